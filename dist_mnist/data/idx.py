"""Strict reader for MNIST's IDX files, raw or gzipped.

Every error is a ValueError (or FileNotFoundError) that names the file and says what is wrong.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 2051  # 0x00000803: unsigned byte, 3 dimensions
LABELS_MAGIC = 2049  # 0x00000801: unsigned byte, 1 dimension
ROWS = COLS = 28
N_CLASSES = 10


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's content, gunzipped when it is gzip; errors name the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path}: is a directory, expected an IDX file")
    return read_bytes_from(path.read_bytes(), path)


def read_bytes_from(raw: bytes, where: str | os.PathLike) -> bytes:
    """`raw`, gunzipped when it is gzip; errors name `where`."""
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{where}: corrupt gzip stream ({e})") from None


def _header(data: bytes, path: Path, magic: int, n_dims: int) -> tuple[int, ...]:
    size = 4 + 4 * n_dims
    if len(data) < size:
        raise ValueError(f"{path}: {len(data)} bytes is too short for an IDX header ({size} bytes)")
    found, *dims = struct.unpack(f">{1 + n_dims}I", data[:size])
    if found != magic:
        kind = "images" if magic == IMAGES_MAGIC else "labels"
        raise ValueError(f"{path}: magic number {found}, expected {magic} for IDX {kind}")
    expected = size + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        what = "truncated" if len(data) < expected else "has trailing bytes"
        raise ValueError(f"{path}: {what}: header {tuple(dims)} needs {expected} bytes, found {len(data)}")
    return tuple(dims)


def read_images(path: str | os.PathLike) -> np.ndarray:
    """Images as uint8 (n, 784), row-major pixels."""
    return parse_images(read_bytes(path), Path(path))


def parse_images(data: bytes, path: Path) -> np.ndarray:
    """Images from the uncompressed bytes of the IDX file at `path` (named in errors)."""
    n, rows, cols = _header(data, path, IMAGES_MAGIC, 3)
    if (rows, cols) != (ROWS, COLS):
        raise ValueError(f"{path}: images are {rows}x{cols}, expected {ROWS}x{COLS}")
    return np.frombuffer(data, dtype=np.uint8, offset=16).reshape(n, rows * cols)


def read_labels(path: str | os.PathLike) -> np.ndarray:
    """Labels as uint8 (n,), each in 0-9."""
    return parse_labels(read_bytes(path), Path(path))


def parse_labels(data: bytes, path: Path) -> np.ndarray:
    """Labels from the uncompressed bytes of the IDX file at `path` (named in errors)."""
    _header(data, path, LABELS_MAGIC, 1)
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    bad = np.flatnonzero(labels >= N_CLASSES)
    if len(bad):
        raise ValueError(
            f"{path}: label {labels[bad[0]]} at index {bad[0]} is outside 0-{N_CLASSES - 1} ({len(bad)} bad labels)"
        )
    return labels


def check_pair(images: np.ndarray, labels: np.ndarray, images_path: Path, labels_path: Path) -> None:
    """Images and labels of one split must have the same count."""
    if len(images) != len(labels):
        raise ValueError(f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels")
