"""The executor-side shard cache (spark/shard_cache.py): a shard read once into .npy files in
the node's SparkFiles directory, memory-mapped, named by its run's scope and removed with it.
Outside a Spark task the cache uses the temp directory, so none of this needs a JVM."""

from __future__ import annotations

import numpy as np

from dist_mnist.spark import shard_cache

from ..support.datasets import write_parts
from ..support.fakes import unique_images


def _cache_in(tmp_path, monkeypatch):
    local = tmp_path / "spark-files"
    local.mkdir()
    monkeypatch.setattr(shard_cache, "_local_dir", lambda: str(local))
    monkeypatch.setattr(shard_cache, "_SHARDS", {})
    return local


def test_a_shard_is_read_once_and_mapped_read_only(tmp_path, monkeypatch):
    local = _cache_in(tmp_path, monkeypatch)
    images, labels = unique_images(12), (np.arange(12) % 10).astype(np.uint8)
    (a,) = write_parts(tmp_path, images, labels, (12,))
    x, y = shard_cache.get_shard([(a, 2, 9)], scope="run")
    assert isinstance(x, np.memmap) and not x.flags.writeable
    np.testing.assert_array_equal(x, images[2:9])
    np.testing.assert_array_equal(y, labels[2:9])
    files = {p.name: p.stat().st_mtime_ns for p in local.iterdir()}
    reads = []
    monkeypatch.setattr(shard_cache, "read_segments", lambda *args: reads.append(args))
    again, _ = shard_cache.get_shard([(a, 2, 9)], scope="run")  # cached in this process: no read
    assert again is x and not reads
    monkeypatch.setattr(shard_cache, "_SHARDS", {})  # another Python worker of the same node: maps the files
    other, _ = shard_cache.get_shard([(a, 2, 9)], scope="run")
    np.testing.assert_array_equal(other, images[2:9])
    assert not reads and {p.name: p.stat().st_mtime_ns for p in local.iterdir()} == files


def test_the_same_rows_under_another_range_are_another_shard(tmp_path, monkeypatch):
    local = _cache_in(tmp_path, monkeypatch)
    images, labels = unique_images(10), np.zeros(10, np.uint8)
    (a,) = write_parts(tmp_path, images, labels, (10,))
    first, _ = shard_cache.get_shard([(a, 0, 5)], scope="run")
    second, _ = shard_cache.get_shard([(a, 5, 10)], scope="run")
    np.testing.assert_array_equal(first, images[:5])
    np.testing.assert_array_equal(second, images[5:])
    assert len(list(local.iterdir())) == 4  # images and labels of each


def test_a_scope_names_the_shard_files_and_dropping_it_removes_them(tmp_path, monkeypatch):
    local = _cache_in(tmp_path, monkeypatch)
    images, labels = unique_images(20), (np.arange(20) % 10).astype(np.uint8)
    a, b = write_parts(tmp_path, images, labels, (12, 8))

    x1, _ = shard_cache.get_shard([(a, 0, None)], scope="run1")
    shard_cache.get_shard([(b, 0, None)], scope="run1")
    shard_cache.get_shard([(a, 0, None)], scope="run2")
    names = sorted(p.name for p in local.iterdir())
    assert len(names) == 6 and all(n.startswith(("dist-mnist-shard-run1-", "dist-mnist-shard-run2-")) for n in names)

    shard_cache.drop_shards("run1")
    assert all(p.name.startswith("dist-mnist-shard-run2-") for p in local.iterdir()) and len(list(local.iterdir())) == 2
    assert not any(k.startswith("dist-mnist-shard-run1-") for k in shard_cache._SHARDS)
    np.testing.assert_array_equal(x1, images[:12])  # what was handed out stays mapped after the unlink

    shard_cache.release_shard([(a, 0, None)], scope="run2")  # a barrier task's own shard, when told to stop
    assert list(local.iterdir()) == [] and shard_cache._SHARDS == {}


def test_a_worker_forgets_a_cached_shard_whose_files_are_gone(tmp_path, monkeypatch):
    local = _cache_in(tmp_path, monkeypatch)
    images, labels = unique_images(10), np.zeros(10, np.uint8)
    (a,) = write_parts(tmp_path, images, labels, (10,))
    shard_cache.get_shard([(a, 0, None)], scope="old")
    for p in local.iterdir():  # the driver closed run "old" (local mode: the same directory)
        p.unlink()
    shard_cache.get_shard([(a, 0, None)], scope="new")
    assert [k.split("-")[3] for k in shard_cache._SHARDS] == ["new"]
