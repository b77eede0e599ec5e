"""Flat packing and the per-shard step functions, against plain float64 NumPy written here.

The expectations never call the model or the updater: a one-hidden-layer MLP's loss and
gradients and DL4J's Nesterov/L2 step are re-derived below, longhand.
"""

import numpy as np
import pytest

from dist_mnist.nn.flat import layout_of, pack, unpack
from dist_mnist.nn.model import init_params
from dist_mnist.nn.steps import Batcher, grad_sums, local_steps
from dist_mnist.nn.updaters import Nesterovs

from ..support.fakes import learnable

SIZES = [784, 12, 10]
ETA, MU, LAM = 0.01, 0.9, 1e-4


def plain_loss_and_grads(p: dict, images: np.ndarray, labels: np.ndarray):
    """Summed NLL and summed gradients of relu(x W0 + b0) W1 + b1, in float64."""
    X = images.astype(np.float64) / 255.0  # (n, 784)
    W0, b0, W1, b1 = (p[k].astype(np.float64) for k in ("W0", "b0", "W1", "b1"))
    a = X @ W0 + b0
    h = np.where(a > 0, a, 0.0)  # (n, 12)
    logits = h @ W1 + b1  # (n, 10)
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    onehot = np.eye(10)[labels]
    loss = -np.log(probs[np.arange(len(labels)), labels]).sum()
    d_logits = probs - onehot
    d_a = (d_logits @ W1.T) * (a > 0)
    grads = {"W0": X.T @ d_a, "b0": d_a.sum(axis=0), "W1": h.T @ d_logits, "b1": d_logits.sum(axis=0)}
    return grads, loss


def test_pack_is_the_arrays_end_to_end_and_unpack_views_it():
    params = init_params(SIZES, 0)
    flat = pack(params)
    by_hand = np.concatenate([params["W0"].reshape(-1), params["b0"], params["W1"].reshape(-1), params["b1"]])
    assert flat.dtype == np.float32 and flat.shape == (784 * 12 + 12 + 12 * 10 + 10,)
    np.testing.assert_array_equal(flat, by_hand)
    views = unpack(flat, layout_of(params))
    assert list(views) == ["W0", "b0", "W1", "b1"]
    assert views["W1"].shape == (12, 10) and views["W1"][3, 4] == params["W1"][3, 4]
    for k in params:
        np.testing.assert_array_equal(views[k], params[k])
        assert np.shares_memory(views[k], flat)


def test_batcher_scales_the_chosen_rows():
    images, labels = learnable(50)
    rows = np.array([3, 1, 4, 1, 5, 9])
    X, y = Batcher(images, labels, batch_size=16)(rows)
    assert X.dtype == np.float32 and X.shape == (6, 784)
    for i, r in enumerate(rows):
        np.testing.assert_allclose(X[i], [v / 255 for v in images[r]], rtol=1e-6)
        assert y[i] == labels[r]


def test_grad_sums_match_a_plain_mlp():
    images, labels = learnable(50)
    params = init_params(SIZES, 1)
    params["b0"] += 0.05  # nonzero biases, so their gradients are checked too
    rows = np.array([3, 1, 4, 1, 5, 9])
    grads, loss, n = grad_sums(params, Batcher(images, labels, batch_size=16), rows)
    expected, expected_loss = plain_loss_and_grads(params, images[rows], labels[rows])
    assert n == 6 and loss == pytest.approx(expected_loss, rel=1e-5)
    for k in expected:
        assert grads[k].dtype == np.float32
        np.testing.assert_allclose(grads[k], expected[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_local_steps_match_plain_nesterov_steps():
    images, labels = learnable(100)
    batches = [np.arange(0, 32), np.arange(32, 64), np.arange(64, 100)]
    params = init_params(SIZES, 2)
    theta = {k: v.astype(np.float64) for k, v in params.items()}
    velocity = {k: np.zeros_like(v) for k, v in theta.items()}
    updater = Nesterovs(ETA, MU, LAM)
    state = updater.init_state(params)
    loss, seen = local_steps(params, state, updater, Batcher(images, labels, 36), batches)
    total = 0.0
    for rows in batches:  # DL4J 0.x NESTEROVS + L2 on weights, divided by the batch size
        G, batch_loss = plain_loss_and_grads(theta, images[rows], labels[rows])
        total += batch_loss
        for k in theta:
            v_prev = velocity[k]
            velocity[k] = MU * v_prev - ETA * G[k]
            update = MU * v_prev - (1 + MU) * velocity[k] + (LAM * theta[k] if k.startswith("W") else 0.0)
            theta[k] = theta[k] - update / len(rows)
    assert seen == 100 and loss == pytest.approx(total, rel=1e-5)
    for k in theta:
        np.testing.assert_allclose(params[k], theta[k], rtol=1e-4, atol=1e-6, err_msg=k)
        np.testing.assert_allclose(state[k], velocity[k], rtol=1e-4, atol=1e-6, err_msg=k)
