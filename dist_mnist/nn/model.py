"""The MLP: Xavier init, forward pass, fused softmax/NLL loss and backprop, in pure NumPy.

Parameters are a dict {"W0": (n_in, n_out), "b0": (n_out,), "W1": ..., ...} of float32.
Gradients come back as *sums* over the examples so that partial results add up exactly.
"""

from __future__ import annotations

import itertools

import numpy as np

from dist_mnist import schedule

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


def _relu_layer(h: np.ndarray, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """relu(h @ W + b), in one fresh buffer."""
    z = h @ W
    z += b
    return np.maximum(z, 0.0, out=z)


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


def logits_of(params: Params, X: np.ndarray) -> np.ndarray:
    """Forward pass from float32 inputs X (n, 784) to logits (n, n_classes)."""
    n_layers = len(params) // 2
    h, W0, _ = _active_inputs(X, params["W0"])
    Ws = [W0] + [params[f"W{i}"] for i in range(1, n_layers)]
    for i in range(n_layers - 1):
        h = _relu_layer(h, Ws[i], params[f"b{i}"])
    return h @ Ws[-1] + params[f"b{n_layers - 1}"]


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
    X0, W0, cols = _active_inputs(X, params["W0"])
    Ws = [W0] + [params[f"W{i}"] for i in range(1, n_layers)]
    hs = [X0]  # activations entering each layer, (n, fan_in) each
    for i in range(n_layers - 1):
        hs.append(_relu_layer(hs[-1], Ws[i], params[f"b{i}"]))
    logits = hs[-1] @ Ws[-1] + params[f"b{n_layers - 1}"]  # (n, C)

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
