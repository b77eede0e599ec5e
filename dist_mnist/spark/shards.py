"""Executor-side shard cache: each Python worker loads its Parquet files once and keeps them.

This must live in an importable module: functions defined in a job's __main__ are pickled by
value, so their module globals would be fresh in every task.

A shard is loaded from Parquet into a .npy file in the executor's local Spark directory and
memory-mapped; every Python worker of that executor maps the same pages, so the resident
data costs the uint8 size once per executor, however many Python workers there are.
"""

from __future__ import annotations

import hashlib
import os
import tempfile

import numpy as np

from dist_mnist.data.parquet import local_path, read_segments
from dist_mnist.nn.model import N_PIXELS

_SHARDS: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _local_dir() -> str:
    try:
        from pyspark import SparkFiles

        return SparkFiles.getRootDirectory()
    except Exception:  # outside a Spark task, e.g. in unit tests
        return tempfile.gettempdir()


def shard_key(segments, n_classes: int, n_in: int = N_PIXELS) -> str:
    """A name for the shard made of these row ranges (paths, ranges, sizes and mtimes if local)."""
    h = hashlib.sha256(f"{n_classes}:{n_in}".encode())
    for f, start, stop in segments:
        h.update(f"{f}\0{start}\0{stop}\0".encode())
        local = local_path(f)
        if os.path.exists(local):
            st = os.stat(local)
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:24]


def get_shard(segments, n_classes: int = 10, n_in: int = N_PIXELS) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, n_in): uint8 pixels or float32, labels (n,)) of these (file, start, stop)
    row ranges, loaded at most once per executor."""
    segments = [tuple(s) for s in segments]
    key = shard_key(segments, n_classes, n_in)
    if key not in _SHARDS:
        _SHARDS[key] = _load(key, segments, n_classes, n_in)
    return _SHARDS[key]


def _load(key: str, segments, n_classes: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    base = os.path.join(_local_dir(), f"dist-mnist-shard-{key}")
    images_path, labels_path = base + "-images.npy", base + "-labels.npy"
    if not (os.path.exists(images_path) and os.path.exists(labels_path)):
        images, labels = read_segments(segments, n_classes, n_in)
        for path, arr in ((labels_path, labels), (images_path, images)):
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".npy.tmp")
            with os.fdopen(fd, "wb") as f:
                np.save(f, arr)
            os.replace(tmp, path)  # atomic: a concurrent worker sees all of it or none
        del images, labels
        release_freed_memory()
    return np.load(images_path, mmap_mode="r"), np.load(labels_path, mmap_mode="r")


def release_freed_memory() -> None:
    """Give the memory Parquet decoding used back to the system: Arrow's pool and glibc's
    heap keep freed memory for reuse, several times the shard's size, which would otherwise
    stay in every worker that loaded a shard (benchmarks/memory.py measures workers' PSS)."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def resident_bytes() -> int:
    """Memory this process holds for its shards: the proportional set size (PSS) of the
    shard mappings, so pages shared by several Python workers are counted once in a sum
    over processes. Falls back to the arrays' sizes where /proc is not available."""
    try:
        with open("/proc/self/smaps") as f:
            total, in_shard = 0, False
            for line in f:
                if "-" in line.split(" ", 1)[0]:  # a mapping's header line
                    in_shard = "dist-mnist-shard-" in line
                elif in_shard and line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
            return total
    except OSError:
        return sum(x.nbytes + y.nbytes for x, y in _SHARDS.values())
