"""The Nesterov/L2 and SGD updates as one pass over each parameter array, compiled by numba.

Each kernel does, per element, exactly the float32 operations of the longhand NumPy update in
updaters.py, in the same order and each rounded to float32: fastmath stays off, so LLVM neither
contracts a multiply and an add into an FMA nor reassociates, and the two paths give the same
bits (tests/unit/test_fused.py). One pass reads theta, v and G once and writes theta and v once,
where NumPy makes nine passes and a temporary; G is left as it was.

numba is imported at the first step, not with the package, so commands that never take a step
pay nothing. numba caches the compiled code in $NUMBA_CACHE_DIR if set, else beside the source
(the package's __pycache__), else in the user's cache directory (~/.cache/numba; always there for a
zip shipped with --py-files); where it can write none of them (a read-only install and no writable
home) each process compiles once, uncached.
Without numba, or with DIST_MNIST_FUSED=0 in the environment, `kernels()` is None and the
updaters take the NumPy path: the same bits, slower.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

_log = logging.getLogger(__name__)
ENV = "DIST_MNIST_FUSED"  # "0": the NumPy path even where numba is installed


class Kernels(NamedTuple):
    """The compiled kernels, on 1-D C-contiguous float32 arrays and float32 scalars."""

    nesterov: Callable[..., None]  # (theta, v, G, mu, eta, c1 = -mu*mu, c2 = 1+mu, decay, scale)
    sgd: Callable[..., None]  # (theta, G, eta, decay, scale)


def _nesterov(theta, v, g, mu, eta, c1, c2, decay, scale):  # pragma: no cover - runs compiled
    for i in range(theta.size):
        v_prev = v[i]
        eg = g[i] * eta
        v[i] = v_prev * mu - eg  # v_t = mu*v - eta*G
        u = v_prev * c1 + eg * c2  # -mu^2 v_{t-1} + (1+mu) eta G
        theta[i] = theta[i] * decay - u * scale  # decay 1 where there is no L2: x*1 is exact


def _sgd(theta, g, eta, decay, scale):  # pragma: no cover - runs compiled
    for i in range(theta.size):
        theta[i] = theta[i] * decay - (g[i] * eta) * scale


def _compile(numba, cache: bool) -> Kernels:
    """Kernels compiled now (or loaded from numba's cache), tried once on one element each."""
    jit = numba.njit(cache=cache, fastmath=False, nogil=True)
    kernels = Kernels(jit(_nesterov), jit(_sgd))
    a, f = np.zeros(1, np.float32), np.float32(1)
    kernels.nesterov(a, a.copy(), a.copy(), f, f, f, f, f, f)  # compiles the one signature used
    kernels.sgd(a, a.copy(), f, f, f)
    return kernels


def _load() -> Kernels | None:
    if os.environ.get(ENV, "1") == "0":
        return None
    try:
        import numba
    except ImportError as e:
        _log.info("numba is not importable (%s): the updaters take the NumPy path (same bits, slower)", e)
        return None
    try:
        return _compile(numba, cache=True)
    except (OSError, RuntimeError):  # no writable cache: numba raises at decoration or at the first save
        pass
    try:
        return _compile(numba, cache=False)
    except Exception as e:  # noqa: BLE001 - a broken numba must not stop training: the NumPy path is right
        _log.warning("numba could not compile the fused updater (%s): the NumPy path (same bits, slower)", e)
        return None


@functools.cache
def kernels() -> Kernels | None:
    """The compiled kernels (loaded on the first call in this process), or None for the NumPy path."""
    return _load()


def reset() -> None:
    """Forget the kernels, so the next `kernels()` loads them again (tests)."""
    kernels.cache_clear()


def fusable(*arrays: np.ndarray) -> bool:
    """True when the kernels apply: float32, C-contiguous (so ravel is a view), one shape, writable."""
    shape = arrays[0].shape
    return all(
        a.dtype == np.float32 and a.flags.c_contiguous and a.flags.writeable and a.shape == shape for a in arrays
    )
