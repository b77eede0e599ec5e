"""Flat packing and the per-shard step functions shared by the reference and the executors."""

import numpy as np

from dist_mnist.nn.flat import layout_of, pack, unpack
from dist_mnist.nn.model import init_params, loss_and_grads, to_inputs
from dist_mnist.nn.steps import Batcher, grad_sums, local_steps
from dist_mnist.nn.updaters import Nesterovs

from .fakes import learnable

SIZES = [784, 12, 10]


def test_pack_unpack_round_trip_without_copies():
    params = init_params(SIZES, 0)
    layout = layout_of(params)
    flat = pack(params)
    assert flat.dtype == np.float32 and flat.shape == (sum(v.size for v in params.values()),)
    views = unpack(flat, layout)
    assert list(views) == list(params)
    for k in params:
        np.testing.assert_array_equal(views[k], params[k])
        assert np.shares_memory(views[k], flat)


def test_batcher_and_grad_sums():
    images, labels = learnable(50)
    params = init_params(SIZES, 1)
    batcher = Batcher(images, labels, batch_size=16)
    rows = np.array([3, 1, 4, 1, 5, 9])
    X, y = batcher(rows)
    np.testing.assert_array_equal(X, to_inputs(images[rows]))
    np.testing.assert_array_equal(y, labels[rows])
    grads, loss, n = grad_sums(params, batcher, rows)
    expected, expected_loss, _ = loss_and_grads(params, to_inputs(images[rows]), labels[rows])
    assert n == 6 and loss == expected_loss
    for k in grads:
        np.testing.assert_array_equal(grads[k], expected[k])


def test_local_steps_is_a_loop_of_updater_steps():
    images, labels = learnable(100)
    updater = Nesterovs(0.01, 0.9, 1e-4)
    batches = [np.arange(0, 32), np.arange(32, 64), np.arange(64, 100)]
    params, by_hand = init_params(SIZES, 2), init_params(SIZES, 2)
    state, state_by_hand = updater.init_state(params), updater.init_state(by_hand)
    loss, seen = local_steps(params, state, updater, Batcher(images, labels, 36), batches)
    total = 0.0
    for rows in batches:
        g, l, n = loss_and_grads(by_hand, to_inputs(images[rows]), labels[rows])
        updater.step(by_hand, g, state_by_hand, n)
        total += l
    assert seen == 100 and loss == total
    for k in params:
        np.testing.assert_array_equal(params[k], by_hand[k])
        np.testing.assert_array_equal(state[k], state_by_hand[k])
