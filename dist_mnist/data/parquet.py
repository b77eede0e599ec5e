"""The Parquet layout of a training split, written and read with pyarrow.

Columns: `label` (integer class ids 0..C-1) and the features, one column named by its
dist_mnist.data.features.FeatureKind:
- `image`: binary, exactly n_in bytes a row, uint8 pixels scaled by 1/255 before the first
  layer (what `dist-mnist ingest` writes: 784 bytes, row-major 28x28), or
- `features`: array<float>, exactly n_in floats a row, used as given (what
  `dist_mnist.ml.MLPClassifier.fit` stages from a vector or array column).
Rows are stored in the shuffled global order: file i holds the rows right after file i-1,
so a row's global index is its file's offset plus its position in the file.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dist_mnist.data.features import FeatureKind
from dist_mnist.files.paths import local_path
from dist_mnist.nn.model import N_PIXELS

SCHEMA = pa.schema([("label", pa.int32()), (FeatureKind.IMAGE.column, pa.binary())])


def to_table(images: np.ndarray, labels: np.ndarray) -> pa.Table:
    """An Arrow table of uint8 images (n, 784) and labels (n,), zero-copy for the pixels."""
    n = len(labels)
    offsets = np.arange(0, (n + 1) * N_PIXELS, N_PIXELS, dtype=np.int32)
    image = pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(images))]
    )
    return pa.Table.from_arrays([pa.array(labels.astype(np.int32)), image], schema=SCHEMA)


def feature_kind(names, where: str) -> FeatureKind:
    """Which features column (FeatureKind) a split's schema has; errors name `where`."""
    names = list(names)
    found = [k for k in FeatureKind if k.column in names]
    missing = [c for c in ("label",) if c not in names] + ([] if found else [FeatureKind.IMAGE.column])
    if missing:
        alternative = f" (or '{FeatureKind.FEATURES.column}', an array of floats)" if not found else ""
        raise ValueError(f"{where}: missing column(s) {missing}{alternative}; found {names}")
    if len(found) > 1:
        raise ValueError(f"{where}: has both {' and '.join(repr(k.column) for k in found)} columns; keep one")
    return found[0]


def label_dtype(n_classes: int) -> type:
    """The smallest dtype that holds the class ids."""
    return np.uint8 if n_classes <= 256 else np.int32


def from_table(
    table: pa.Table, where: str, n_classes: int = 10, first_row: int = 0, n_in: int = N_PIXELS
) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, n_in) and labels (n,) from a table; errors name `where` and the row,
    counted from `first_row` (the table's first row in its file).

    An `image` column gives uint8 pixels, a `features` column float32 values.
    """
    kind = feature_kind(table.column_names, where)
    label_col, feature_col = table.column("label"), table.column(kind.column)
    if not pa.types.is_integer(label_col.type):
        raise ValueError(f"{where}: column 'label' has type {label_col.type}, expected an integer type")
    for col_name, col in (("label", label_col), (kind.column, feature_col)):
        if col.null_count:
            raise ValueError(f"{where}: column '{col_name}' has {col.null_count} null values")
    labels = label_col.to_numpy()
    bad = np.flatnonzero((labels < 0) | (labels >= n_classes))
    if len(bad):
        raise ValueError(
            f"{where}: label {labels[bad[0]]} at row {first_row + bad[0]} "
            f"is outside the model's classes 0-{n_classes - 1}"
        )
    return inputs_of(kind, feature_col, where, first_row, n_in), labels.astype(label_dtype(n_classes))


def inputs_of(kind: FeatureKind, col, where: str, first_row: int = 0, n_in: int = N_PIXELS) -> np.ndarray:
    """The model inputs (n, n_in) of a features column of `kind`: uint8 pixels (images_of) or
    float32 values (features_of); errors name `where` and the row counted from `first_row`."""
    reader = images_of if kind is FeatureKind.IMAGE else features_of
    return reader(col, where, first_row, n_in)


def _combined(col, empty_type):
    if isinstance(col, pa.ChunkedArray):
        return col.combine_chunks() if len(col) else pa.array([], empty_type)
    return col


def _check_lengths(offsets: np.ndarray, width: int, where: str, first_row: int, what: str, unit: str) -> None:
    lengths = np.diff(offsets)
    bad = np.flatnonzero(lengths != width)
    if len(bad):
        raise ValueError(f"{where}: {what} at row {first_row + bad[0]} has {lengths[bad[0]]} {unit}, expected {width}")


def images_of(image_col, where: str, first_row: int = 0, n_in: int = N_PIXELS) -> np.ndarray:
    """uint8 images (n, n_in) of a binary column of n_in-byte rows, without a copy where
    possible; errors name `where` and the row."""
    n = len(image_col)
    image_col = _combined(image_col, pa.binary())
    FeatureKind.IMAGE.check_arrow(image_col.type, where)
    if not n:
        return np.empty((0, n_in), np.uint8)
    offsets = np.frombuffer(image_col.buffers()[1], dtype=np.int32 if pa.types.is_binary(image_col.type) else np.int64)
    offsets = offsets[image_col.offset : image_col.offset + n + 1]
    _check_lengths(offsets, n_in, where, first_row, FeatureKind.IMAGE.column, FeatureKind.IMAGE.unit)
    data = np.frombuffer(image_col.buffers()[2], dtype=np.uint8)
    return data[offsets[0] : offsets[0] + n * n_in].reshape(n, n_in)


def first_nonfinite(x: np.ndarray) -> tuple[int, int] | None:
    """(row, index) of the first NaN or infinity in rows x (n, d), or None when all are finite."""
    if np.isfinite(x).all():  # the common case: one pass, no lookup
        return None
    row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
    return row, int(np.flatnonzero(~np.isfinite(x[row]))[0])


def nonfinite_name(value: float) -> str:
    """'a NaN', 'inf' or '-inf', for messages."""
    return "a NaN" if np.isnan(value) else ("inf" if value > 0 else "-inf")


def features_of(
    feature_col,
    where: str,
    first_row: int = 0,
    n_in: int | None = None,
    name: str = FeatureKind.FEATURES.column,
    strict: bool = True,
) -> np.ndarray:
    """float32 rows (n, n_in) of a list<float|double> column of n_in values a row (n_in None:
    the first row's length), without a copy for float32; errors name `where`, the column and
    the row. strict: a null or non-finite value is an error; else a null value is read as NaN
    and the caller checks (transform's handleInvalid)."""
    n = len(feature_col)
    feature_col = _combined(feature_col, pa.list_(pa.float32()))
    t = feature_col.type
    FeatureKind.FEATURES.check_arrow(t, where, name)
    if not n:
        return np.empty((0, n_in or 0), np.float32)
    if feature_col.null_count:
        row = int(np.flatnonzero(feature_col.is_null().to_numpy(zero_copy_only=False))[0])
        raise ValueError(f"{where}: column '{name}' is null at row {first_row + row}")
    if pa.types.is_fixed_size_list(t):
        offsets = np.arange(n + 1, dtype=np.int64) * t.list_size
        values = feature_col.flatten()
    else:
        offsets = np.asarray(feature_col.offsets)
        values = feature_col.values.slice(offsets[0], offsets[-1] - offsets[0])
        offsets = offsets - offsets[0]
    width = int(offsets[1]) if n_in is None else n_in
    _check_lengths(offsets, width, where, first_row, f"'{name}'", FeatureKind.FEATURES.unit)
    if values.null_count and strict:
        row = (
            int(np.searchsorted(offsets, np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0], "right"))
            - 1
        )
        raise ValueError(f"{where}: column '{name}' has a null value at row {first_row + row}")
    with np.errstate(over="ignore"):  # a double beyond float32's range becomes inf, refused below
        x = values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(n, width)
    bad = first_nonfinite(x) if strict else None
    if bad:
        row, index = bad
        raise ValueError(
            f"{where}: column '{name}' has {nonfinite_name(x[row, index])} at row {first_row + row}, "
            f"index {index}; features must be finite numbers"
        )
    return x


def read_files(paths: list[str], n_classes: int = 10, n_in: int = N_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of whole Parquet files (local paths or URIs), concatenated in order."""
    return read_segments([(path, 0, None) for path in paths], n_classes, n_in)


def read_segments(segments, n_classes: int = 10, n_in: int = N_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of row ranges (file, start, stop) of Parquet files, concatenated.

    Only the row groups that overlap a range are read; stop None means the end of the file.
    """
    images, labels = [], []
    for path, start, stop_or_end in segments:
        try:
            pf = pq.ParquetFile(local_path(path))
            meta = pf.metadata
            stop = meta.num_rows if stop_or_end is None else stop_or_end
            groups, first, at = [], None, 0
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                if at < stop and at + n > start:
                    groups.append(g)
                    first = at if first is None else first
                at += n
            table = pf.read_row_groups(groups, use_threads=False) if groups else pf.schema_arrow.empty_table()
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{path}: cannot be read as Parquet ({e})") from None
        if groups:
            table = table.slice(start - first, stop - start)
        x, y = from_table(table, path, n_classes, first_row=start, n_in=n_in)
        images.append(x)
        labels.append(y)
    if not images:
        return np.empty((0, n_in), np.uint8), np.empty(0, label_dtype(n_classes))
    if len(images) == 1:  # views on the Arrow buffers: no copy
        return images[0], labels[0]
    return np.concatenate(images), np.concatenate(labels)


def count_rows(path: str) -> int:
    """Rows in one Parquet file, from its footer only."""
    try:
        return pq.ParquetFile(local_path(path)).metadata.num_rows
    except (pa.ArrowInvalid, OSError) as e:
        raise ValueError(f"{path}: cannot be read as Parquet ({e})") from None
