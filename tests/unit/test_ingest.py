"""Ingest on a small fake MNIST directory (its checksums patched in as the published ones)."""

import hashlib
import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dist_mnist.data import ingest as ingest_module
from dist_mnist.data import mnist
from dist_mnist.data.ingest import ingest, read_metadata
from dist_mnist.data.parquet import from_table

from ..support.fakes import fake_mnist_dir, idx_labels, write

N_TRAIN, N_TEST = 100, 40


@pytest.fixture
def source(tmp_path, monkeypatch):
    """A fake MNIST dir whose SHA-256s are made the 'published' ones; returns (dir, fake)."""
    src, fake = fake_mnist_dir(tmp_path / "src", N_TRAIN, N_TEST)
    monkeypatch.setattr(mnist, "SHA256_UNCOMPRESSED", dict(fake["sha256"]))
    return src, fake


def _read_split(split_dir):
    files = sorted(split_dir.iterdir())
    tables = [pq.read_table(f) for f in files]
    return files, tables


def _rows(split_dir):
    """(images, labels) of a split, concatenated in file order."""
    _, tables = _read_split(split_dir)
    parts = [from_table(t, "t") for t in tables]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_parts_schema_shuffle_and_metadata(tmp_path, source):
    src, fake = source
    data = tmp_path / "DATA"
    meta = ingest(src, data, partitions=3, seed=5)
    assert sorted(os.listdir(data)) == ["metadata.json", "test", "train"]
    assert sorted(os.listdir(tmp_path)) == ["DATA", "src"]  # no temporary dirs left
    for split, n in (("train", N_TRAIN), ("test", N_TEST)):
        files, tables = _read_split(data / split)
        assert [f.name for f in files] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
        counts = [t.num_rows for t in tables]
        assert sum(counts) == n and max(counts) - min(counts) <= 1  # balanced
        for t in tables:
            assert t.schema.field("label").type == pa.int32()
            assert t.schema.field("image").type == pa.binary()
            assert all(len(v) == 784 for v in t.column("image").to_pylist())
        images, labels = _rows(data / split)
        src_images, src_labels = fake["arrays"][split]
        order = images[:, 0].astype(int) * 256 + images[:, 1]  # unique_images encodes the row index
        np.testing.assert_array_equal(np.sort(order), np.arange(n))  # a permutation of the source
        assert not np.array_equal(order, np.arange(n))  # shuffled
        np.testing.assert_array_equal(images, src_images[order])
        np.testing.assert_array_equal(labels, src_labels[order])  # labels travel with their images
        assert meta["splits"][split] == {"rows": n, "rows_per_part": counts}
    assert json.loads((data / "metadata.json").read_text()) == meta == read_metadata(data)
    assert meta["schema_version"] == 1 and meta["seed"] == 5 and meta["partitions"] == 3
    assert meta["sha256_uncompressed"] == fake["sha256"]


def test_shuffle_is_deterministic_by_seed(tmp_path, source):
    src, _ = source
    ingest(src, tmp_path / "A", partitions=2, seed=1)
    ingest(src, tmp_path / "B", partitions=2, seed=1)
    ingest(src, tmp_path / "C", partitions=2, seed=2)
    for split in ("train", "test"):
        a, b, c = (_rows(tmp_path / d / split) for d in "ABC")
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[0], c[0])
        for name in ("part-00000.parquet", "part-00001.parquet"):
            assert pq.read_table(tmp_path / "A" / split / name).equals(pq.read_table(tmp_path / "B" / split / name))
    assert read_metadata(tmp_path / "A") == read_metadata(tmp_path / "B")


def test_existing_data_is_refused_without_overwrite(tmp_path, source):
    src, _ = source
    data = tmp_path / "DATA"
    data.mkdir()
    (data / "keep").write_text("x")
    with pytest.raises(FileExistsError) as info:
        ingest(src, data)
    assert str(data) in str(info.value) and "--overwrite" in str(info.value)
    assert os.listdir(data) == ["keep"]
    ingest(src, data, overwrite=True, seed=3)
    assert read_metadata(data)["seed"] == 3 and "keep" not in os.listdir(data)
    assert sorted(os.listdir(tmp_path)) == ["DATA", "src"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_bad_labels_file_leaves_nothing_behind(tmp_path, source, overwrite):
    src, _ = source
    data = tmp_path / "DATA"
    if overwrite:
        ingest(src, data, seed=1)
        before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    bad = idx_labels(np.r_[np.zeros(N_TRAIN - 1), 12])
    mnist.SHA256_UNCOMPRESSED["train-labels-idx1-ubyte"] = hashlib.sha256(bad).hexdigest()
    write(src / "train-labels-idx1-ubyte", bad, gz=True)
    with pytest.raises(ValueError) as info:
        ingest(src, data, overwrite=overwrite)
    assert "train-labels-idx1-ubyte.gz" in str(info.value) and "label 12" in str(info.value)
    if overwrite:
        assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before
        assert sorted(os.listdir(tmp_path)) == ["DATA", "src"]
    else:
        assert sorted(os.listdir(tmp_path)) == ["src"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_failure_while_writing_leaves_old_data_intact(tmp_path, source, monkeypatch, overwrite):
    src, _ = source
    data = tmp_path / "DATA"
    if overwrite:
        ingest(src, data, seed=1)
        before = {p: p.read_bytes() for p in data.rglob("*") if p.is_file()}
    calls = []
    real_write = pq.write_table

    def write_then_fail(table, where, **kw):
        calls.append(where)
        if len(calls) == 3:
            raise OSError("No space left on device")
        return real_write(table, where, **kw)

    monkeypatch.setattr(ingest_module.pq, "write_table", write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        ingest(src, data, overwrite=overwrite, seed=9)
    assert len(calls) == 3
    if overwrite:
        assert {p: p.read_bytes() for p in data.rglob("*") if p.is_file()} == before
        assert sorted(os.listdir(tmp_path)) == ["DATA", "src"]
    else:
        assert sorted(os.listdir(tmp_path)) == ["src"]


def test_checksum_mismatch_is_refused(tmp_path, source):
    src, _ = source
    mnist.SHA256_UNCOMPRESSED["t10k-images-idx3-ubyte"] = "0" * 64
    with pytest.raises(ValueError) as info:
        ingest(src, tmp_path / "DATA")
    assert "t10k-images-idx3-ubyte.gz" in str(info.value) and "SHA-256" in str(info.value)
    assert not (tmp_path / "DATA").exists()


def test_bad_partition_counts(tmp_path, source):
    src, _ = source
    with pytest.raises(ValueError, match="--partitions must be >= 1"):
        ingest(src, tmp_path / "DATA", partitions=0)
    with pytest.raises(ValueError, match="exceeds the 40 rows of test"):
        ingest(src, tmp_path / "DATA", partitions=41)
    assert sorted(os.listdir(tmp_path)) == ["src"]


def test_missing_source(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ingest(tmp_path / "nope", tmp_path / "DATA")
    assert not (tmp_path / "DATA").exists()
