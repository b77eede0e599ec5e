"""Synthetic Parquet datasets in the project's layout: DATA/train/part-0000i.parquet and
DATA/test/..., rows in one global order whatever the number of part files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from dist_mnist.data.parquet import to_table


def write_parts(
    split_dir: Path, images: np.ndarray, labels: np.ndarray, sizes: Sequence[int], row_group_size: int | None = None
) -> tuple[str, ...]:
    """Consecutive runs of `sizes` rows as part-00000.parquet, part-00001.parquet, ...: their paths."""
    files, at = [], 0
    for i, n in enumerate(sizes):
        path = split_dir / f"part-{i:05d}.parquet"
        pq.write_table(to_table(images[at : at + n], labels[at : at + n]), path, row_group_size=row_group_size)
        files.append(str(path))
        at += n
    return tuple(files)


def write_split(split_dir: Path, images: np.ndarray, labels: np.ndarray, parts: int) -> None:
    """The rows in `parts` consecutive, nearly equal part files (a new directory)."""
    split_dir.mkdir(parents=True)
    write_parts(split_dir, images, labels, [len(rows) for rows in np.array_split(np.arange(len(labels)), parts)])


def write_dataset(root: Path, train, test, parts: int, test_parts: int | None = None) -> Path:
    """DATA/train and DATA/test from (images, labels) pairs."""
    write_split(root / "train", *train, parts)
    write_split(root / "test", *test, test_parts or parts)
    return root
