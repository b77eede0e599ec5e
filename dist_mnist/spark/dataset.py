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

from dist_mnist.data.parquet import local_path


@dataclass(frozen=True)
class SplitFiles:
    """The part files of one split, in global row order, with their row counts."""

    path: str
    files: tuple[str, ...]
    rows: tuple[int, ...]

    @property
    def n_rows(self) -> int:
        return sum(self.rows)


def _list_files(path: str) -> list[str]:
    """Data files under `path`, sorted; hidden and _-prefixed names skipped, as Spark does."""
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
    files = []
    for entry in entries:
        rel = entry.path[len(root):].lstrip("/")
        if entry.type == pafs.FileType.File and not any(part[:1] in "._" for part in rel.split("/")):
            files.append(prefix + entry.path)
    return sorted(files)


def describe_split(path: str) -> SplitFiles:
    """List and check a Parquet split: columns, types and row counts from the footers."""
    path = str(path).rstrip("/")
    files, rows = _list_files(path), []
    for f in files:
        try:
            meta = pq.ParquetFile(f if "://" in f else local_path(f))
            schema = meta.schema_arrow
        except (pa.ArrowInvalid, OSError) as e:
            raise ValueError(f"{f}: not a Parquet file ({e})") from None
        missing = [c for c in ("label", "image") if c not in schema.names]
        if missing:
            raise ValueError(f"{f}: missing column(s) {missing}; found {schema.names}")
        label, image = schema.field("label").type, schema.field("image").type
        if not pa.types.is_integer(label):
            raise ValueError(f"{f}: column 'label' has type {label}, expected an integer type")
        if not (pa.types.is_binary(image) or pa.types.is_large_binary(image)):
            raise ValueError(f"{f}: column 'image' has type {image}, expected binary")
        rows.append(meta.metadata.num_rows)
    if not files or sum(rows) == 0:
        raise ValueError(f"{path}: the dataset is empty")
    return SplitFiles(path, tuple(files), tuple(rows))
