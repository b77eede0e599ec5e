"""Driver-side view of an ingested split: its Parquet files and row counts, never its rows.

Only the footers are read (with pyarrow), so describing a split costs milliseconds and no
Spark job. Paths may be local or any URI pyarrow's filesystems take (hdfs://, s3://, ...);
executors read the same paths, so they must mean the same on every node.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from dist_mnist.data.features import FeatureKind
from dist_mnist.data.parquet import feature_kind
from dist_mnist.files.paths import local_path

SPLITS = ("train", "test")  # the splits of a dataset root DATA


@dataclass(frozen=True)
class SplitFiles:
    """The part files of one split, in global row order, with their row counts."""

    path: str
    files: tuple[str, ...]
    rows: tuple[int, ...]
    feature: FeatureKind = FeatureKind.IMAGE  # its features column: uint8 bytes or float values

    @property
    def n_rows(self) -> int:
        return sum(self.rows)


def _list_files(path: str) -> list[str]:
    """Data files under `path`, sorted; hidden and _-prefixed names skipped, as Spark does.

    A dataset root (DATA, with DATA/train and DATA/test, or a metadata.json) is refused with
    the split to pass instead: read whole, its metadata.json is no Parquet file.
    """
    given = path.rstrip("/")
    if "://" not in path:
        path = os.path.abspath(local_path(path))
    try:
        fs, root = pafs.FileSystem.from_uri(path) if "://" in path else (pafs.LocalFileSystem(), path)
        info = fs.get_file_info(root)
        if info.type == pafs.FileType.NotFound:
            raise FileNotFoundError(f"{path}: no such dataset")
        if info.type == pafs.FileType.File:
            return [path]
        entries = fs.get_file_info(pafs.FileSelector(root, recursive=True))
    except (pa.ArrowInvalid, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot be listed ({e})") from None
    prefix = path[: len(path) - len(root)] if "://" in path else ""
    files, top = [], {}
    for entry in entries:
        rel = entry.path[len(root) :].lstrip("/")
        if "/" not in rel:
            top[rel] = entry.type
        if entry.type == pafs.FileType.File and not any(part[:1] in "._" for part in rel.split("/")):
            files.append(prefix + entry.path)
    if top.get("metadata.json") == pafs.FileType.File or all(top.get(s) == pafs.FileType.Directory for s in SPLITS):
        raise ValueError(f"{given}: a dataset root, not a split; pass {given}/test (or {given}/train)")
    return sorted(files)


def read_footers(path: str) -> list[tuple[str, pa.Schema, int]]:
    """(file, schema, rows) of each Parquet file of a split, from the footers alone.

    Errors are one line naming the path: missing (FileNotFoundError), a dataset root instead
    of a split, no Parquet files, or a file that is not Parquet (truncated, say).
    """
    footers = []
    for f in _list_files(str(path).rstrip("/")):
        try:
            meta = pq.ParquetFile(f if "://" in f else local_path(f))
            footers.append((f, meta.schema_arrow, meta.metadata.num_rows))
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{f}: not a Parquet file ({e})") from None
    return footers


def describe_split(path: str, allow_empty: bool = False) -> SplitFiles:
    """List and check a Parquet split: columns, types and row counts from the footers.

    allow_empty: a missing or empty split is described as having no rows (a run without a
    test set) instead of being an error.
    """
    path = str(path).rstrip("/")
    try:
        footers = read_footers(path)
    except FileNotFoundError:
        if not allow_empty:
            raise
        footers = []
    files, rows, kinds = [], [], set()
    for f, schema, n in footers:
        kind = feature_kind(schema.names, f)
        kinds.add(kind)
        label = schema.field("label").type
        if not pa.types.is_integer(label):
            raise ValueError(f"{f}: column 'label' has type {label}, expected an integer type")
        kind.check_arrow(schema.field(kind.column).type, f)
        files.append(f)
        rows.append(n)
    if sum(rows) == 0 and not allow_empty:
        raise ValueError(f"{path}: the dataset is empty")
    if len(kinds) > 1:
        image, features = FeatureKind.IMAGE.column, FeatureKind.FEATURES.column
        raise ValueError(f"{path}: some files have an '{image}' column and others a '{features}' column")
    return SplitFiles(path, tuple(files), tuple(rows), kinds.pop() if kinds else FeatureKind.IMAGE)
