"""Keyed arrays <-> one contiguous float32 vector, so a round ships a single buffer."""

from __future__ import annotations

import numpy as np

Layout = list[tuple[str, tuple[int, ...]]]


def layout_of(arrays: dict[str, np.ndarray]) -> Layout:
    """The (key, shape) order of a dict of arrays."""
    return [(k, v.shape) for k, v in arrays.items()]


def pack(arrays: dict[str, np.ndarray], dtype=np.float32) -> np.ndarray:
    """One contiguous vector of all arrays, in key order."""
    return np.concatenate([np.ravel(v) for v in arrays.values()]).astype(dtype, copy=False)


def unpack(flat: np.ndarray, layout: Layout) -> dict[str, np.ndarray]:
    """Views into `flat` with the shapes of `layout` (no copy)."""
    out, at = {}, 0
    for key, shape in layout:
        size = int(np.prod(shape, dtype=np.int64))
        out[key] = flat[at : at + size].reshape(shape)
        at += size
    assert at == len(flat), f"layout covers {at} of {len(flat)} values"
    return out
