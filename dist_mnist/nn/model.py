"""The MLP: Xavier init, forward pass, fused softmax/NLL loss and backprop, in pure NumPy.

Parameters are a dict {"W0": (n_in, n_out), "b0": (n_out,), "W1": ..., ...} of float32.
Gradients come back as *sums* over the examples so that partial results add up exactly.
"""

from __future__ import annotations

import itertools

import numpy as np

from dist_mnist import schedule
from dist_mnist.nn import sparse
from dist_mnist.nn.sparse import Csr, sparse_rows

Params = dict[str, np.ndarray]

N_PIXELS = 784
N_CLASSES = 10


def layer_sizes_of(params: Params) -> list[int]:
    """Layer sizes [n_in, hidden..., n_out] read off the weight shapes."""
    n_layers = len(params) // 2
    return [params["W0"].shape[0]] + [params[f"W{i}"].shape[1] for i in range(n_layers)]


def init_params(layer_sizes: list[int], seed: int) -> Params:
    """DL4J XAVIER init: W ~ N(0, 2/(fan_in+fan_out)), biases 0, all float32."""
    rng = schedule.rng(seed, schedule.INIT)
    params: Params = {}
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(layer_sizes)):
        std = np.sqrt(2.0 / (fan_in + fan_out))
        params[f"W{i}"] = (rng.standard_normal((fan_in, fan_out)) * std).astype(np.float32)
        params[f"b{i}"] = np.zeros(fan_out, dtype=np.float32)
    return params


def to_inputs(images: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The network's float32 inputs, optionally into a preallocated buffer: uint8 pixels are
    scaled to [0, 1]; float features are taken as they are."""
    out = np.empty(images.shape, dtype=np.float32) if out is None else out[: len(images)]
    if images.dtype == np.uint8:
        np.multiply(images, np.float32(1.0 / 255.0), out=out, casting="unsafe")
    else:
        out[...] = images
    return out


def _active_inputs(X: np.ndarray, W0: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(X, W0) restricted to the input columns that are nonzero somewhere in the batch.

    About a third of MNIST's pixels are 0 in every image of a 128-example minibatch; they add
    exactly 0 to X @ W0 and their rows of dW0 are exactly 0, so dropping them saves a third of
    the two big GEMMs. Returns the column indices too (None when nothing is dropped).
    """
    cols = np.flatnonzero(X.any(axis=0))
    if len(cols) > 0.9 * X.shape[1]:
        return X, W0, None
    return X[:, cols], W0[cols], cols


def _first_product(X: np.ndarray, W0: np.ndarray) -> tuple[np.ndarray, Csr | None, np.ndarray, np.ndarray | None]:
    """X @ W0 (n, H), from X's non-zeros where it is sparse (nn/sparse.py), else from its active
    columns; with what the weight gradient needs: (product, CSR rows or None, X's active
    columns, their indices or None)."""
    rows = sparse_rows(X)
    if rows is not None:
        return sparse.forward(rows, W0), rows, X, None
    X0, W0a, cols = _active_inputs(X, W0)
    return X0 @ W0a, None, X0, cols


def logits_of(params: Params, X: np.ndarray) -> np.ndarray:
    """Forward pass from float32 inputs X (n, 784) to logits (n, n_classes)."""
    n_layers = len(params) // 2
    z, *_ = _first_product(X, params["W0"])
    z += params["b0"]
    for i in range(1, n_layers):
        h = np.maximum(z, 0.0, out=z)
        z = h @ params[f"W{i}"] + params[f"b{i}"]
    return z


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax into a fresh array, the row max subtracted first."""
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def predict(params: Params, images: np.ndarray) -> np.ndarray:
    """Predicted class for each row of uint8 images (n, 784)."""
    return np.argmax(logits_of(params, to_inputs(images)), axis=1)


def loss_and_grads(params: Params, X: np.ndarray, y: np.ndarray) -> tuple[Params, float, int]:
    """Summed NLL loss and summed gradients over the batch.

    Args:
        X: float32 inputs (n, 784); y: int labels (n,).
    Returns:
        (grads with the same keys as params, loss sum as float64, n).
    """
    n_layers = len(params) // 2
    n = len(y)
    z, csr, X0, cols = _first_product(X, params["W0"])
    z += params["b0"]
    Ws = [params[f"W{i}"] for i in range(n_layers)]
    hs = [X0]  # activations entering each layer, (n, fan_in) each (X0: the dense path's inputs)
    for i in range(1, n_layers):
        hs.append(np.maximum(z, 0.0, out=z))
        z = hs[-1] @ Ws[i] + params[f"b{i}"]
    logits = z  # (n, C)

    # Softmax fused with NLL: subtract the row max, and the output delta is p - onehot.
    z = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1, keepdims=True))
    log_p = z - log_norm
    rows = np.arange(n)
    loss_sum = float(-log_p[rows, y].sum(dtype=np.float64))
    delta = np.exp(log_p)
    delta[rows, y] -= 1.0  # (n, C)

    grads: Params = {}
    for i in range(n_layers - 1, -1, -1):
        if i == 0 and csr is not None:  # from the non-zero inputs: the rows of the zero ones are 0
            grads["W0"] = sparse.weight_grad(csr, delta, params["W0"].shape[0])
        else:
            grads[f"W{i}"] = hs[i].T @ delta
        grads[f"b{i}"] = delta.sum(axis=0)
        if i > 0:  # the input layer needs no delta of its own
            delta = delta @ Ws[i].T
            delta *= hs[i] > 0  # ReLU derivative, as a boolean mask
    if cols is not None:  # the dropped inputs' rows of dW0 are exactly zero
        dW0 = np.zeros_like(params["W0"])
        dW0[cols] = grads["W0"]
        grads["W0"] = dW0
    return {k: grads[k] for k in params}, loss_sum, n
