"""Executor-side shard cache: each Python worker loads its Parquet files once and keeps them.

This must live in an importable module: functions defined in a job's __main__ are pickled by
value, so their module globals would be fresh in every task.

A shard is loaded from Parquet into a .npy file in the executor's local Spark directory and
memory-mapped; every Python worker of that executor maps the same pages, so the resident
data costs the uint8 size once per executor, however many Python workers there are.

The files are named by a scope (a training run's Plan.scope, one evaluation) and removed
when it ends: a barrier task unlinks its own when told to stop (its mapping stays valid),
and closing a transport removes the scope's files from the driver's SparkFiles directory,
which in local mode is the executors' too. On a cluster the Spark-job transport's files stay
in each executor's SparkFiles directory until the application ends (Spark then deletes it).
A Python worker drops a cached shard whose file is gone the next time it loads one.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import tempfile

import numpy as np

from dist_mnist.data.parquet import read_segments
from dist_mnist.files.paths import local_path
from dist_mnist.nn.model import N_PIXELS

_SHARDS: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # file name base -> (features, labels)
PREFIX = "dist-mnist-shard-"


def _local_dir() -> str:
    try:
        from pyspark import SparkFiles

        return SparkFiles.getRootDirectory()
    except Exception:  # noqa: BLE001 - outside a Spark task, e.g. in unit tests (no SparkContext: an AssertionError)
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


def _name(segments, n_classes: int, n_in: int, scope: str) -> str:
    return f"{PREFIX}{scope + '-' if scope else ''}{shard_key(segments, n_classes, n_in)}"


def get_shard(segments, n_classes: int = 10, n_in: int = N_PIXELS, scope: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(features (n, n_in): uint8 pixels or float32, labels (n,)) of these (file, start, stop)
    row ranges, loaded at most once per executor; `scope` names the files for drop_shards."""
    segments = [tuple(s) for s in segments]
    name = _name(segments, n_classes, n_in, scope)
    if name not in _SHARDS:
        for gone in [k for k in _SHARDS if not os.path.exists(os.path.join(_local_dir(), k + "-images.npy"))]:
            del _SHARDS[gone]  # its scope ended: let the mapping go
        _SHARDS[name] = _load(name, segments, n_classes, n_in)
    return _SHARDS[name]


def release_shard(segments, n_classes: int = 10, n_in: int = N_PIXELS, scope: str = "") -> None:
    """Forget one shard in this process and remove its files (arrays already handed out stay valid)."""
    name = _name([tuple(s) for s in segments], n_classes, n_in, scope)
    _SHARDS.pop(name, None)
    for suffix in ("-images.npy", "-labels.npy"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(_local_dir(), name + suffix))


def drop_shards(scope: str) -> None:
    """Forget every shard of `scope` in this process and remove its files from this node's
    SparkFiles directory (in local mode, the executors' too)."""
    assert scope, "drop_shards needs a scope"
    for name in [k for k in _SHARDS if k.startswith(f"{PREFIX}{scope}-")]:
        del _SHARDS[name]
    for path in glob.glob(os.path.join(glob.escape(_local_dir()), f"{PREFIX}{scope}-*")):
        with contextlib.suppress(FileNotFoundError):  # a worker may remove its own meanwhile
            os.unlink(path)


def _load(name: str, segments, n_classes: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    base = os.path.join(_local_dir(), name)
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


def shard_bytes() -> int:
    """Memory this process holds for its shards: the proportional set size (PSS) of the
    shard mappings, so pages shared by several Python workers are counted once in a sum
    over processes. Falls back to the arrays' sizes where /proc is not available."""
    try:
        with open("/proc/self/smaps") as f:
            total, in_shard = 0, False
            for line in f:
                if "-" in line.split(" ", 1)[0]:  # a mapping's header line
                    in_shard = PREFIX in line
                elif in_shard and line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
            return total
    except OSError:
        return sum(x.nbytes + y.nbytes for x, y in _SHARDS.values())
