"""The Parquet layout of an ingested split, written and read with pyarrow.

Columns: `label` int32 (0-9) and `image` binary (exactly 784 bytes, row-major uint8).
Rows are stored in the shuffled global order: file i holds the rows right after file i-1,
so a row's global index is its file's offset plus its position in the file.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dist_mnist.nn.model import N_PIXELS

SCHEMA = pa.schema([("label", pa.int32()), ("image", pa.binary())])


def to_table(images: np.ndarray, labels: np.ndarray) -> pa.Table:
    """An Arrow table of uint8 images (n, 784) and labels (n,), zero-copy for the pixels."""
    n = len(labels)
    offsets = np.arange(0, (n + 1) * N_PIXELS, N_PIXELS, dtype=np.int32)
    image = pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(images))]
    )
    return pa.Table.from_arrays([pa.array(labels.astype(np.int32)), image], schema=SCHEMA)


def from_table(table: pa.Table, where: str, n_classes: int = 10, first_row: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (n, 784) and uint8 labels (n,) from a table; errors name `where` and the
    row, counted from `first_row` (the table's first row in its file)."""
    missing = [c for c in ("label", "image") if c not in table.column_names]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; found {table.column_names}")
    label_col, image_col = table.column("label"), table.column("image")
    if not pa.types.is_integer(label_col.type):
        raise ValueError(f"{where}: column 'label' has type {label_col.type}, expected an integer type")
    if not (pa.types.is_binary(image_col.type) or pa.types.is_large_binary(image_col.type)):
        raise ValueError(f"{where}: column 'image' has type {image_col.type}, expected binary")
    for name, col in (("label", label_col), ("image", image_col)):
        if col.null_count:
            raise ValueError(f"{where}: column '{name}' has {col.null_count} null values")
    labels = label_col.to_numpy()
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if len(bad):
        raise ValueError(
            f"{where}: label {labels[bad[0]]} at row {first_row + bad[0]} is outside the model's classes 0-{n_classes - 1}"
        )
    return images_of(image_col, where, first_row), labels.astype(np.uint8)


def images_of(image_col, where: str, first_row: int = 0) -> np.ndarray:
    """uint8 images (n, 784) of a binary column of 784-byte rows, without a copy where possible;
    errors name `where` and the row."""
    n = len(image_col)
    if isinstance(image_col, pa.ChunkedArray):
        image_col = image_col.combine_chunks() if n else pa.array([], pa.binary())
    if not n:
        return np.empty((0, N_PIXELS), np.uint8)
    offsets = np.frombuffer(image_col.buffers()[1], dtype=np.int32 if pa.types.is_binary(image_col.type) else np.int64)
    offsets = offsets[image_col.offset : image_col.offset + n + 1]
    lengths = np.diff(offsets)
    bad = np.flatnonzero(lengths != N_PIXELS)
    if len(bad):
        raise ValueError(f"{where}: image at row {first_row + bad[0]} has {lengths[bad[0]]} bytes, expected {N_PIXELS}")
    data = np.frombuffer(image_col.buffers()[2], dtype=np.uint8)
    return data[offsets[0] : offsets[0] + n * N_PIXELS].reshape(n, N_PIXELS)


def read_files(paths: list[str], n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of whole Parquet files (local paths or URIs), concatenated in order."""
    return read_segments([(path, 0, None) for path in paths], n_classes)


def read_segments(segments, n_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of row ranges (file, start, stop) of Parquet files, concatenated.

    Only the row groups that overlap a range are read; stop None means the end of the file.
    """
    images, labels = [], []
    for path, start, stop in segments:
        try:
            pf = pq.ParquetFile(local_path(path))
            meta = pf.metadata
            stop = meta.num_rows if stop is None else stop
            groups, first, at = [], None, 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                if at < stop and at + n > start:
                    groups.append(g)
                    first = at if first is None else first
                at += n
            table = pf.read_row_groups(groups) if groups else pf.schema_arrow.empty_table()
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{path}: cannot be read as Parquet ({e})") from None
        if groups:
            table = table.slice(start - first, stop - start)
        x, y = from_table(table, path, n_classes, first_row=start)
        images.append(x)
        labels.append(y)
    if not images:
        return np.empty((0, N_PIXELS), np.uint8), np.empty(0, np.uint8)
    return np.concatenate(images), np.concatenate(labels)


def count_rows(path: str) -> int:
    """Rows in one Parquet file, from its footer only."""
    try:
        return pq.ParquetFile(local_path(path)).metadata.num_rows
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{path}: cannot be read as Parquet ({e})") from None


def local_path(path: str) -> str:
    """A plain path for a file: URI; other URIs unchanged."""
    # Spark lists local files as file:/... or file:///...; pyarrow wants a plain path there
    # and takes other URIs (hdfs://, s3://) through its own filesystems.
    if path.startswith("file:"):
        path = path[len("file:") :]
        while path.startswith("//"):
            path = path[1:]
    return path
