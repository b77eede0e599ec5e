"""Ingest: verified MNIST IDX files -> DATA/{train,test}/part-*.parquet + DATA/metadata.json."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from dist_mnist import schedule
from dist_mnist.data import mnist
from dist_mnist.data.parquet import to_table
from dist_mnist.files.atomic import atomic_directory, atomic_write_json, read_json, recover_if_idle
from dist_mnist.files.paths import refuse_overlap
from dist_mnist.nn.model import N_CLASSES, N_PIXELS

SCHEMA_VERSION = 1
METADATA = "metadata.json"


def ingest(
    source: str | os.PathLike, out: str | os.PathLike, partitions: int = 2, seed: int = 123, overwrite: bool = False
) -> dict:
    """Verify the four IDX files, shuffle each split by `seed`, write N balanced Parquet parts."""
    if partitions < 1:
        raise ValueError(f"--partitions must be >= 1, got {partitions}")
    out = Path(out)
    refuse_overlap(out, "--out", {"--source": source})
    recover_if_idle(out)  # what a killed ingest left: its old copy put back, its temporary one removed
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out}: already exists (pass --overwrite to replace it)")
    split_meta: dict[str, dict] = {}
    digests: dict[str, str] = {}
    meta = {
        "schema_version": SCHEMA_VERSION,
        "seed": seed,
        "partitions": partitions,
        "columns": {"label": "int32 0-9", "image": "binary, 784 bytes, row-major uint8 28x28"},
        "n_in": N_PIXELS,
        "n_classes": N_CLASSES,
        "splits": split_meta,
        "sha256_uncompressed": digests,
    }
    splits = {}
    for split in mnist.SPLITS:  # read and verify everything before writing anything
        images, labels, split_digests = mnist.load_split(source, split)
        if partitions > len(labels):
            raise ValueError(f"--partitions {partitions} exceeds the {len(labels)} rows of {split}")
        splits[split] = (images, labels)
        digests.update(split_digests)
    with atomic_directory(out, overwrite=overwrite, what="ingest") as tmp:
        for split, (images, labels) in splits.items():
            # test is shuffled too, by its own stream, so any prefix of it is a fair sample
            perm = schedule.rng(seed, schedule.INGEST, 0 if split == "train" else 1).permutation(len(labels))
            (tmp / split).mkdir()
            counts = []
            for i, rows in enumerate(np.array_split(perm, partitions)):
                pq.write_table(to_table(images[rows], labels[rows]), tmp / split / f"part-{i:05d}.parquet")
                counts.append(len(rows))
            split_meta[split] = {"rows": len(labels), "rows_per_part": counts}
        atomic_write_json(tmp / METADATA, meta)
    return meta


def read_metadata(data_dir: str | os.PathLike) -> dict:
    """DATA/metadata.json, or {} for a hand-made dataset without one."""
    path = Path(data_dir) / METADATA
    return read_json(path) if path.exists() else {}
