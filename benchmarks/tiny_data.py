"""Write a small DATA/{train,test} Parquet dataset in dist-mnist's schema, for smoke tests.

Schema: `label` int32 (0-9), `image` binary (784 bytes, row-major uint8), split over
--partitions part files. Rows are the first N of each IDX split, unshuffled.
"""

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from torch_reference import read_idx  # the script's own directory is on sys.path

SCHEMA = pa.schema([("label", pa.int32()), ("image", pa.binary())])


def to_table(images: np.ndarray, labels: np.ndarray) -> pa.Table:
    """An Arrow table from uint8 images (n, 28, 28) and labels (n,)."""
    rows = images.reshape(len(images), -1)  # (n, 784)
    return pa.table({"label": pa.array(labels.astype(np.int32)),
                     "image": pa.array([r.tobytes() for r in rows], pa.binary())}, schema=SCHEMA)


def write_split(images: np.ndarray, labels: np.ndarray, out: Path, partitions: int) -> None:
    """Write one split as `partitions` roughly equal part files."""
    out.mkdir(parents=True, exist_ok=True)
    for i, idx in enumerate(np.array_split(np.arange(len(labels)), partitions)):
        pq.write_table(to_table(images[idx], labels[idx]), out / f"part-{i:05d}.parquet")


def main(argv: list[str] | None = None) -> int:
    """Write --train-rows / --test-rows rows (0 = all) to OUT/train and OUT/test."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mnist-dir", type=Path, default=Path(os.environ.get("MNIST_DIR", "data/mnist")))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--train-rows", type=int, default=6000)
    p.add_argument("--test-rows", type=int, default=1000)
    p.add_argument("--partitions", type=int, default=2)
    args = p.parse_args(argv)
    for split, prefix, rows in (("train", "train", args.train_rows), ("test", "t10k", args.test_rows)):
        images = read_idx(args.mnist_dir / f"{prefix}-images-idx3-ubyte.gz")
        labels = read_idx(args.mnist_dir / f"{prefix}-labels-idx1-ubyte.gz")
        n = rows or len(labels)
        write_split(images[:n], labels[:n], args.out / split, args.partitions)
        print(f"{args.out / split}: {n} rows in {args.partitions} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
