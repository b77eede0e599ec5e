"""Layer 0 from each example's non-zero inputs: its forward product X @ W0 and its weight gradient
X^T @ dH, the two products that are nearly all of a step's multiply-adds.

MNIST's pixels are 81% zeros (19.1% non-zero), so computed from the non-zeros of each row these
products need about a fifth of a dense GEMM's multiply-adds. A batch is first listed as CSR (its
rows' non-zero columns and values). The forward product adds `v * W0[j]` into row i of the output
for each non-zero `v = X[i, j]`, four non-zeros a pass, so a pass over the output row loads and
stores it once for four rows of W0; the weight gradient lists the batch by input column (CSC) and
adds `v * dH[i]` into row j of dW0 the same way, four a pass. Tiling W0's columns to fit L2 was
measured slower here (benchmarks/kernels.py). One thread, as a task has one core (numba, no
parallel loops), fastmath off (no FMA contraction, no reassociation).

The sums run over each row's (column's) non-zeros in order, grouped by four: the same math as the
dense product up to the order of floating-point additions, and the same bits on every run, every
worker and every transport. `use_sparse(X)` chooses per batch: at most
SPARSE_BELOW of the inputs non-zero (MNIST's images), else the dense GEMM (standardised features).
Without numba, or with DIST_MNIST_SPARSE=0, every batch takes the dense path.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

_log = logging.getLogger(__name__)
ENV = "DIST_MNIST_SPARSE"  # "0": the dense path even where numba is installed
SPARSE_BELOW = 0.5  # a batch with at most this share of non-zero inputs takes the sparse kernels


class Kernels(NamedTuple):
    """The compiled kernels, on C-contiguous float32 arrays (CSR: int32 indptr and indices)."""

    csr: Callable[..., int]  # (X, indptr, indices, values) -> non-zeros listed
    forward: Callable[..., None]  # (indptr, indices, values, W, out): out = X @ W
    weight_grad: Callable[..., None]  # (indptr, indices, values, dH, out): out = X^T @ dH


def _csr(X, indptr, indices, values):  # pragma: no cover - runs compiled
    n, m = X.shape
    k = 0
    for i in range(n):
        indptr[i] = k
        for j in range(m):
            v = X[i, j]
            if v != 0:
                indices[k] = j
                values[k] = v
                k += 1
    indptr[n] = k
    return k


def _forward(indptr, indices, values, W, out):  # pragma: no cover - runs compiled
    n = indptr.shape[0] - 1
    H = W.shape[1]
    for i in range(n):
        o = out[i]
        for c in range(H):
            o[c] = 0.0
        p, end = indptr[i], indptr[i + 1]
        while p + 4 <= end:  # four of the row's non-zeros a pass over o: a quarter of its loads and stores
            v0, v1, v2, v3 = values[p], values[p + 1], values[p + 2], values[p + 3]
            w0, w1, w2, w3 = W[indices[p]], W[indices[p + 1]], W[indices[p + 2]], W[indices[p + 3]]
            for c in range(H):
                o[c] += (v0 * w0[c] + v1 * w1[c]) + (v2 * w2[c] + v3 * w3[c])
            p += 4
        while p < end:
            v, w = values[p], W[indices[p]]
            for c in range(H):
                o[c] += v * w[c]
            p += 1


def _weight_grad(indptr, indices, values, dH, out):  # pragma: no cover - runs compiled
    n = indptr.shape[0] - 1
    m, H = out.shape
    nnz = indptr[n]
    start = np.zeros(m + 1, np.int64)  # the batch by input column (CSC): each row of out summed in one place
    for p in range(nnz):
        start[indices[p] + 1] += 1
    for j in range(m):
        start[j + 1] += start[j]
    rows, vals, fill = np.empty(nnz, np.int64), np.empty(nnz, np.float32), start[:m].copy()
    for i in range(n):
        for p in range(indptr[i], indptr[i + 1]):
            q = fill[indices[p]]
            rows[q], vals[q] = i, values[p]
            fill[indices[p]] = q + 1
    for j in range(m):
        o = out[j]
        for c in range(H):
            o[c] = 0.0
        q, end = start[j], start[j + 1]
        while q + 4 <= end:
            v0, v1, v2, v3 = vals[q], vals[q + 1], vals[q + 2], vals[q + 3]
            d0, d1, d2, d3 = dH[rows[q]], dH[rows[q + 1]], dH[rows[q + 2]], dH[rows[q + 3]]
            for c in range(H):
                o[c] += (v0 * d0[c] + v1 * d1[c]) + (v2 * d2[c] + v3 * d3[c])
            q += 4
        while q < end:
            v, d = vals[q], dH[rows[q]]
            for c in range(H):
                o[c] += v * d[c]
            q += 1


def _compile(numba, cache: bool) -> Kernels:
    """Kernels compiled now (or loaded from numba's cache), tried once on a 1 x 1 problem."""
    jit = numba.njit(cache=cache, fastmath=False, nogil=True, boundscheck=False)
    kernels = Kernels(jit(_csr), jit(_forward), jit(_weight_grad))
    X, W = np.ones((1, 1), np.float32), np.ones((1, 1), np.float32)
    indptr, indices, values = np.zeros(2, np.int32), np.zeros(1, np.int32), np.zeros(1, np.float32)
    kernels.csr(X, indptr, indices, values)
    kernels.forward(indptr, indices, values, W, np.empty((1, 1), np.float32))
    kernels.weight_grad(indptr, indices, values, W, np.empty((1, 1), np.float32))
    return kernels


def _load() -> Kernels | None:
    if os.environ.get(ENV, "1") == "0":
        return None
    try:
        import numba
    except ImportError:
        return None
    for cache in (True, False):  # no writable cache: numba raises at decoration or the first save
        try:
            return _compile(numba, cache)
        except (OSError, RuntimeError):
            continue
        except Exception as e:  # noqa: BLE001 - a broken numba must not stop training: the dense path is right
            _log.warning("numba could not compile the sparse layer-0 kernels (%s): the dense path", e)
            return None
    return None


@functools.cache
def kernels() -> Kernels | None:
    """The compiled kernels (loaded on the first call in this process), or None for the dense path."""
    return _load()


def reset() -> None:
    """Forget the kernels, so the next `kernels()` loads them again (tests)."""
    kernels.cache_clear()


class Csr(NamedTuple):
    """A batch's non-zero inputs, row by row (indptr (n + 1,), indices and values (nnz,))."""

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray


def sparse_rows(X: np.ndarray) -> Csr | None:
    """X as CSR where the sparse kernels apply (numba there, float32 C-contiguous, at most
    SPARSE_BELOW non-zero), else None: the dense path."""
    k = kernels()
    if k is None or X.dtype != np.float32 or not X.flags.c_contiguous or X.ndim != 2 or X.size == 0:
        return None
    nnz = np.count_nonzero(X)
    if nnz > SPARSE_BELOW * X.size:
        return None
    indptr = np.empty(X.shape[0] + 1, np.int32)
    indices, values = np.empty(nnz, np.int32), np.empty(nnz, np.float32)
    k.csr(X, indptr, indices, values)
    return Csr(indptr, indices, values)


def forward(rows: Csr, W: np.ndarray) -> np.ndarray:
    """X @ W (n, H) from X's non-zeros (W float32 C-contiguous (n_in, H))."""
    out = np.empty((len(rows.indptr) - 1, W.shape[1]), np.float32)
    kernels().forward(rows.indptr, rows.indices, rows.values, np.ascontiguousarray(W), out)  # type: ignore[union-attr]
    return out


def weight_grad(rows: Csr, dH: np.ndarray, n_in: int) -> np.ndarray:
    """X^T @ dH (n_in, H) from X's non-zeros (dH float32 (n, H))."""
    out = np.empty((n_in, dH.shape[1]), np.float32)
    kernels().weight_grad(rows.indptr, rows.indices, rows.values, np.ascontiguousarray(dH), out)  # type: ignore[union-attr]
    return out
