"""The MLP: gradients against finite differences, sums over examples, init, shapes."""

import itertools

import numpy as np
import pytest

from dist_mnist.nn import model
from dist_mnist.nn.model import init_params, layer_sizes_of, logits_of, loss_and_grads, predict, to_inputs

TINY = [6, 5, 4, 3]


def _tiny_batch(n: int = 7, seed: int = 0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, TINY[0])).astype(dtype), rng.integers(0, TINY[-1], n)


def _perturbed(sizes: list[int], seed: int):
    """float64 copy of a small net with nonzero biases, so central differences are accurate to ~1e-9."""
    params = {k: v.astype(np.float64) for k, v in init_params(sizes, seed=seed).items()}
    rng = np.random.default_rng(seed + 1)
    for k in params:  # nonzero biases, so the check covers them properly
        params[k] += 0.1 * rng.standard_normal(params[k].shape)
    return params


def _assert_grads_match_finite_differences(params, X, y, eps: float = 1e-6):
    grads, _, n = loss_and_grads(params, X, y)
    assert n == len(y) and set(grads) == set(params)
    for k, theta in params.items():
        assert grads[k].shape == theta.shape
        numeric = np.zeros_like(theta)
        for i in np.ndindex(theta.shape):
            old = theta[i]
            theta[i] = old + eps
            up = loss_and_grads(params, X, y)[1]
            theta[i] = old - eps
            down = loss_and_grads(params, X, y)[1]
            theta[i] = old
            numeric[i] = (up - down) / (2 * eps)
        np.testing.assert_allclose(grads[k], numeric, rtol=1e-5, atol=1e-7, err_msg=k)
    return grads


def test_gradients_match_finite_differences():
    X, y = _tiny_batch()
    _assert_grads_match_finite_differences(_perturbed(TINY, seed=1), X, y)


def _mnist_like(n: int, side: int, seed: int) -> np.ndarray:
    """uint8 digits (n, side*side): a blank 2-pixel border and a sparse centre, as MNIST's."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, side, side), np.uint8)
    inner = rng.integers(0, 256, (n, side - 4, side - 4)) * (rng.random((n, side - 4, side - 4)) < 0.4)
    images[:, 2:-2, 2:-2] = inner
    images[:, 2:-2, 4] = 0  # and a column blank in every image, inside the digit's box
    return images.reshape(n, side * side)


def test_gradients_match_finite_differences_on_sparse_inputs(monkeypatch):
    # 10x10 "digits": 64 of 100 pixel columns are 0 in the whole batch, so loss_and_grads
    # takes the path that drops them, as on every real MNIST minibatch
    sizes = [100, 5, 3]
    X = to_inputs(_mnist_like(8, 10, seed=3)).astype(np.float64)
    y = np.random.default_rng(4).integers(0, sizes[-1], len(X))
    kept = []
    real = model._active_inputs

    def spy(X, W0):
        out = real(X, W0)
        kept.append(out[2])
        return out

    monkeypatch.setattr(model, "_active_inputs", spy)
    grads = _assert_grads_match_finite_differences(_perturbed(sizes, seed=5), X, y)
    assert kept and all(cols is not None for cols in kept)  # the sparse path ran, every time
    zero = ~X.any(axis=0)
    assert zero.sum() >= 64 and len(kept[0]) == 100 - zero.sum()
    assert not grads["W0"][zero].any()  # the dropped inputs' rows of dW0 are exactly 0
    assert grads["W0"][~zero].any(axis=1).all()


def test_loss_and_grads_are_sums_over_examples():
    params = init_params(TINY, seed=3)
    X, y = _tiny_batch(n=10, seed=4, dtype=np.float32)
    whole, loss, n = loss_and_grads(params, X, y)
    first, loss_a, n_a = loss_and_grads(params, X[:4], y[:4])
    second, loss_b, n_b = loss_and_grads(params, X[4:], y[4:])
    assert (n, n_a, n_b) == (10, 4, 6)
    assert loss == pytest.approx(loss_a + loss_b, rel=1e-6)
    for k in params:
        np.testing.assert_allclose(whole[k], first[k] + second[k], rtol=1e-5, atol=1e-6, err_msg=k)


def test_loss_is_summed_nll():
    params = init_params(TINY, seed=5)
    X, y = _tiny_batch(n=9, seed=6, dtype=np.float32)
    logits = logits_of(params, X).astype(np.float64)
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    _, loss, _ = loss_and_grads(params, X, y)
    assert isinstance(loss, float)
    assert loss == pytest.approx(-log_p[np.arange(len(y)), y].sum(), rel=1e-5)


def test_loss_and_grads_do_not_mutate_inputs():
    params = init_params(TINY, seed=7)
    before = {k: v.copy() for k, v in params.items()}
    X, y = _tiny_batch(dtype=np.float32)
    X0 = X.copy()
    loss_and_grads(params, X, y)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])
    np.testing.assert_array_equal(X, X0)


def test_init_shapes_dtypes_and_xavier_std():
    sizes = [784, 1000, 10]
    params = init_params(sizes, seed=123)
    assert list(params) == ["W0", "b0", "W1", "b1"]
    assert layer_sizes_of(params) == sizes
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        W, b = params[f"W{i}"], params[f"b{i}"]
        assert W.shape == (fan_in, fan_out) and W.dtype == np.float32
        assert b.shape == (fan_out,) and b.dtype == np.float32
        assert not b.any()
        std = np.sqrt(2.0 / (fan_in + fan_out))  # DL4J XAVIER
        assert abs(float(W.mean())) < 0.05 * std
        assert W.std() == pytest.approx(std, rel=0.03)


def test_init_is_deterministic_by_seed():
    a, b, c = init_params(TINY, 11), init_params(TINY, 11), init_params(TINY, 12)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["W0"], c["W0"])


def test_logits_and_predict_shapes():
    params = init_params([784, 16, 10], seed=0)
    images = np.random.default_rng(0).integers(0, 256, (5, 784), dtype=np.uint8)
    logits = logits_of(params, to_inputs(images))
    assert logits.shape == (5, 10) and logits.dtype == np.float32
    pred = predict(params, images)
    assert pred.shape == (5,) and np.issubdtype(pred.dtype, np.integer)
    np.testing.assert_array_equal(pred, logits.argmax(axis=1))


def test_to_inputs_scales_bytes_to_unit_float32():
    images = np.array([[0, 1, 127, 128, 254, 255]], dtype=np.uint8)
    X = to_inputs(images)
    assert X.dtype == np.float32 and X.shape == images.shape
    np.testing.assert_allclose(X, images / 255.0, rtol=1e-6)
    assert X[0, 0] == 0.0 and X[0, -1] == pytest.approx(1.0, abs=1e-7)
    buf = np.full((4, 6), -1.0, np.float32)  # a larger preallocated buffer
    out = to_inputs(images, out=buf)
    assert out.shape == (1, 6) and np.shares_memory(out, buf)
    np.testing.assert_array_equal(out, X)
