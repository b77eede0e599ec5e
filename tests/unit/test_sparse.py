"""Layer 0 from the non-zero inputs (dist_mnist/nn/sparse.py): the dense products' values up to
rounding, gradients that match finite differences, chosen by density, the same bits every run."""

from __future__ import annotations

import numpy as np
import pytest

from dist_mnist.nn import model, sparse
from dist_mnist.nn.model import init_params, loss_and_grads, to_inputs

pytestmark = pytest.mark.skipif(sparse.kernels() is None, reason="numba is not installed: the dense path only")


def mnist_like(n: int, seed: int) -> np.ndarray:
    """uint8 (n, 784): about a fifth of the pixels non-zero, a blank border, one all-black image."""
    rng = np.random.default_rng(seed)
    images = (rng.integers(1, 256, (n, 28, 28)) * (rng.random((n, 28, 28)) < 0.28)).astype(np.uint8)
    images[:, :3], images[:, -3:] = 0, 0
    images[0] = 0  # a row without non-zeros
    images[1] = 0
    images[1, 14, 14:17] = 200  # a row of three: fewer than a pass of four
    return images.reshape(n, 784)


def test_the_products_equal_the_dense_ones_up_to_rounding():
    X = to_inputs(mnist_like(37, seed=1))
    rng = np.random.default_rng(2)
    W = rng.standard_normal((784, 300)).astype(np.float32)
    dH = rng.standard_normal((37, 300)).astype(np.float32)
    rows = sparse.sparse_rows(X)
    assert rows is not None and rows.indptr[-1] == np.count_nonzero(X)
    np.testing.assert_allclose(sparse.forward(rows, W), X.astype(np.float64) @ W, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(sparse.weight_grad(rows, dH, 784), X.T.astype(np.float64) @ dH, rtol=1e-5, atol=1e-5)
    assert not sparse.forward(rows, W)[0].any()  # the all-black row
    assert not sparse.weight_grad(rows, dH, 784)[: 3 * 28].any()  # the blank top rows: their pixels are 0


def test_the_path_is_chosen_by_the_batch_density(monkeypatch):
    assert sparse.sparse_rows(to_inputs(mnist_like(16, seed=3))) is not None  # 19% non-zero: sparse
    features = np.random.default_rng(4).standard_normal((16, 784)).astype(np.float32)  # standardised: dense
    assert sparse.sparse_rows(features) is None
    assert sparse.sparse_rows(features.astype(np.float64)) is None  # float64 (the gradient checks): dense
    monkeypatch.setenv(sparse.ENV, "0")
    sparse.reset()
    try:
        assert sparse.sparse_rows(to_inputs(mnist_like(16, seed=3))) is None
    finally:
        monkeypatch.delenv(sparse.ENV)
        sparse.reset()


def test_the_sparse_gradients_match_the_dense_ones_which_match_finite_differences():
    """tests/unit/test_nn_model.py checks the dense float64 path against central differences (in
    float32 they would be rounding noise); here the sparse float32 path equals it within float32's
    rounding, on every array."""
    X = to_inputs(mnist_like(32, seed=5))
    y = np.random.default_rng(6).integers(0, 10, 32)
    params = init_params([784, 64, 10], seed=7)
    grads, loss, n = loss_and_grads(params, X, y)  # float32: the sparse path
    dense, dense_loss, _ = loss_and_grads({k: v.astype(np.float64) for k, v in params.items()}, X.astype(np.float64), y)
    assert n == 32 and abs(loss - dense_loss) < 1e-4 * abs(dense_loss)
    for k in params:
        np.testing.assert_allclose(grads[k], dense[k], rtol=1e-4, atol=1e-5, err_msg=k)


def test_the_same_batch_gives_the_same_bits_every_time():
    X = to_inputs(mnist_like(64, seed=9))
    y = np.random.default_rng(10).integers(0, 10, 64)
    params = init_params([784, 100, 10], seed=11)
    a, b = loss_and_grads(params, X, y)[0], loss_and_grads(params, X, y)[0]
    assert all(np.array_equal(a[k].view(np.uint32), b[k].view(np.uint32)) for k in a)
    assert np.array_equal(model.logits_of(params, X), model.logits_of(params, X))
