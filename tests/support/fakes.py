"""Small fake MNIST files built in the tests: IDX bytes, gzip, and a fake source directory."""

from __future__ import annotations

import gzip
import hashlib
import struct
from pathlib import Path

import numpy as np

from dist_mnist.data import mnist


def idx_images(
    images: np.ndarray, rows: int = 28, cols: int = 28, magic: int = 2051, count: int | None = None
) -> bytes:
    """IDX3 bytes for uint8 images (n, rows*cols); `count` overrides the header's n."""
    n = len(images) if count is None else count
    return struct.pack(">4I", magic, n, rows, cols) + np.ascontiguousarray(images, np.uint8).tobytes()


def idx_labels(labels, magic: int = 2049, count: int | None = None) -> bytes:
    """IDX1 bytes for labels (n,); `count` overrides the header's n."""
    labels = np.asarray(labels, np.uint8)
    n = len(labels) if count is None else count
    return struct.pack(">2I", magic, n) + labels.tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    """Write raw or gzipped bytes; returns the path written (with .gz when gz)."""
    path = Path(str(path) + ".gz") if gz else Path(path)
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def unique_images(n: int, seed: int = 0) -> np.ndarray:
    """Random uint8 images whose first two bytes encode the row index (to trace shuffles)."""
    images = np.random.default_rng(seed).integers(0, 256, (n, 784), dtype=np.uint8)
    images[:, 0], images[:, 1] = np.arange(n) // 256, np.arange(n) % 256
    return images


def fake_mnist_dir(
    root: Path, n_train: int = 100, n_test: int = 40, gz: bool = True, train_labels: np.ndarray | None = None
) -> tuple[Path, dict]:
    """A directory with the four MNIST files (small) and {stem: sha256 of the raw bytes}.

    Returns also the arrays as {split: (images, labels)} under the key "arrays".
    """
    root.mkdir(parents=True, exist_ok=True)
    digests, arrays = {}, {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = unique_images(n, seed=1 if split == "train" else 2)
        labels = np.arange(n) % 10 if split == "test" or train_labels is None else train_labels
        arrays[split] = (images, np.asarray(labels, np.uint8))
        images_stem, labels_stem = mnist.SPLITS[split]
        for stem, data in ((images_stem, idx_images(images)), (labels_stem, idx_labels(labels))):
            write(root / stem, data, gz)
            digests[stem] = hashlib.sha256(data).hexdigest()
    return root, {"sha256": digests, "arrays": arrays}


def learnable(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 784) of noisy class-dependent pixel blobs, and their labels (n,)."""
    rng = np.random.default_rng([seed, 7])
    prototypes = (np.random.default_rng(99).random((10, 784)) < 0.15) * 180.0  # fixed for every call
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = np.clip(prototypes[labels] + rng.normal(30, 40, (n, 784)), 0, 255).astype(np.uint8)
    return images, labels
