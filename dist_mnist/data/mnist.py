"""The MNIST files: names, published checksums, verification and the public mirrors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from dist_mnist.data import idx

# split -> (images file stem, labels file stem)
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# SHA-256 of the uncompressed files of the published dataset. They identify the data whatever
# gzip produced the .gz files, so they are what ingest verifies.
SHA256_UNCOMPRESSED = {
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
}

# MD5 of the canonical .gz files, as torchvision publishes them for its mirrors.
MD5_GZ = {
    "train-images-idx3-ubyte": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte": "ec29112dd5afa0611ce80d1b7f02629c",
}

# torchvision's mirror list, in its order.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

ALL_STEMS = tuple(stem for pair in SPLITS.values() for stem in pair)


def find_file(source: str | os.PathLike, stem: str) -> Path:
    """The file for `stem` in `source`: STEM.gz or STEM (raw)."""
    source = Path(source)
    if not source.is_dir():
        raise FileNotFoundError(f"{source}: MNIST source directory does not exist")
    for name in (stem + ".gz", stem):
        if (source / name).is_dir():
            raise ValueError(f"{source / name}: is a directory, expected an IDX file")
        if (source / name).is_file():
            return source / name
    raise FileNotFoundError(f"{source}: neither {stem}.gz nor {stem} is there")


def verify(path: Path, stem: str, data: bytes) -> str:
    """Check the uncompressed bytes against the published SHA-256; return the digest."""
    digest = hashlib.sha256(data).hexdigest()
    if digest != SHA256_UNCOMPRESSED[stem]:
        raise ValueError(
            f"{path}: SHA-256 of the uncompressed data is {digest}, expected "
            f"{SHA256_UNCOMPRESSED[stem]} (not the published MNIST {stem})"
        )
    return digest


def load_split(source: str | os.PathLike, split: str, check: bool = True) -> tuple[np.ndarray, np.ndarray, dict]:
    """Images (n, 784) uint8, labels (n,) uint8 and {stem: sha256} of one verified split."""
    images_stem, labels_stem = SPLITS[split]
    images_path, labels_path = find_file(source, images_stem), find_file(source, labels_stem)
    images_bytes, labels_bytes = idx.read_bytes(images_path), idx.read_bytes(labels_path)
    # structure first: "truncated" or "bad magic" says more than a checksum mismatch
    images = idx.parse_images(images_bytes, images_path)
    labels = idx.parse_labels(labels_bytes, labels_path)
    idx.check_pair(images, labels, images_path, labels_path)
    digests = {}
    if check:
        digests[images_stem] = verify(images_path, images_stem, images_bytes)
        digests[labels_stem] = verify(labels_path, labels_stem, labels_bytes)
    return images, labels, digests
