"""The reliability matrix through the command line: every bad input ends in exit status 2,
one line that names the file or key, no traceback, and nothing written or overwritten."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest

from dist_mnist.cli import commands as cli
from dist_mnist.config import TrainConfig
from dist_mnist.data import mnist
from dist_mnist.driver.checkpoint import write_arrays
from dist_mnist.files.model import save_model
from dist_mnist.nn.model import init_params

from ..support.cli import one_line_error, snapshot
from ..support.fakes import fake_mnist_dir, idx_images, idx_labels, unique_images

# --- IDX files, through `dist-mnist ingest` ------------------------------------------------

N = 30
IMAGES = "train-images-idx3-ubyte.gz"
LABELS = "train-labels-idx1-ubyte.gz"


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


IDX_CASES = {
    "truncated": (IMAGES, lambda: _gz(idx_images(unique_images(N))[:-100]), "truncated"),
    "trailing bytes": (IMAGES, lambda: _gz(idx_images(unique_images(N)) + b"\0" * 7), "trailing bytes"),
    "wrong magic": (IMAGES, lambda: _gz(idx_images(unique_images(N), magic=2049)), "magic number 2049"),
    "header count": (LABELS, lambda: _gz(idx_labels(np.arange(N) % 10, count=N + 5)), "truncated"),
    "corrupt gzip": (IMAGES, lambda: _gz(idx_images(unique_images(N)))[:-40] + b"garbage!" * 5, "gzip"),
    "labels outside 0-9": (LABELS, lambda: _gz(idx_labels([3, 12] + [1] * (N - 2))), "outside 0-9"),
    "different counts": (LABELS, lambda: _gz(idx_labels(np.arange(N - 1) % 10)), "labels"),
    "empty file": (IMAGES, lambda: b"", "too short"),
    "wrong dimensions": (IMAGES, lambda: _gz(idx_images(unique_images(N)[:, :780], rows=26, cols=30)), "26x30"),
}


@pytest.fixture
def good_source(tmp_path, monkeypatch):
    src, fake = fake_mnist_dir(tmp_path / "src", N, 20)
    monkeypatch.setattr(mnist, "SHA256_UNCOMPRESSED", dict(fake["sha256"]))
    return src


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("case", list(IDX_CASES))
def test_bad_idx_file(good_source, tmp_path, capsys, case, overwrite):
    data = tmp_path / "DATA"
    if overwrite:  # a good dataset that a failed ingest must leave alone
        assert cli.main(["ingest", "--source", str(good_source), "--out", str(data)]) == 0
        capsys.readouterr()
        before = snapshot(data)
    name, make, fragment = IDX_CASES[case]
    (good_source / name).write_bytes(make())
    argv = ["ingest", "--source", str(good_source), "--out", str(data)] + (["--overwrite"] if overwrite else [])
    assert cli.main(argv) == 2
    line = one_line_error(capsys, "ingest")
    assert fragment in line and str(good_source / name.split(".gz")[0]) in line, line
    if overwrite:
        assert snapshot(data) == before
    else:
        assert not data.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dirs left


@pytest.mark.parametrize("case", ["directory", "missing"])
def test_idx_path_that_is_a_directory_or_missing(good_source, tmp_path, capsys, case):
    (good_source / IMAGES).unlink()
    if case == "directory":
        (good_source / IMAGES).mkdir()
    assert cli.main(["ingest", "--source", str(good_source), "--out", str(tmp_path / "DATA")]) == 2
    line = one_line_error(capsys, "ingest")
    expected = (
        f"{good_source / IMAGES}: is a directory" if case == "directory" else "neither train-images-idx3-ubyte.gz"
    )
    assert expected in line, line
    assert not (tmp_path / "DATA").exists()


# --- model files, through `dist-mnist evaluate` ---------------------------------------------

SIZES = [784, 16, 10]


class Marker:
    """Unpickling this would create a file: proof that a pickle was executed."""

    path = ""

    def __reduce__(self):
        return (open, (self.path, "w"))


def _model_run(tmp_path: Path) -> Path:
    run = tmp_path / "RUN"
    run.mkdir()
    save_model(run, init_params(SIZES, 1), {"layer_sizes": SIZES})
    return run


def _rewrite_npz(run: Path, change) -> None:
    with np.load(run / "model.npz") as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    with open(run / "model.npz", "wb") as f:
        np.savez(f, **arrays)


MODEL_CASES = {
    "missing array": (lambda a: a.pop("b1"), "missing arrays ['b1']"),
    "wrong shape": (lambda a: a.update(W0=np.zeros((784, 17), np.float32)), "shape (784, 17)"),
    "wrong dtype": (lambda a: a.update(b0=np.zeros(16, np.float64)), "dtype float64"),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_bad_model_arrays(tmp_path, capsys, no_spark, case):
    run = _model_run(tmp_path)
    change, fragment = MODEL_CASES[case]
    _rewrite_npz(run, change)
    before = snapshot(run)
    assert cli.main(["evaluate", "--model", str(run), "--data", str(tmp_path / "DATA/test")]) == 2
    line = one_line_error(capsys, "evaluate")
    assert fragment in line and str(run / "model.npz") in line, line
    assert snapshot(run) == before


def test_pickled_model_is_refused_and_never_executed(tmp_path, capsys, no_spark):
    run = _model_run(tmp_path)
    Marker.path = str(tmp_path / "pwned")
    _rewrite_npz(run, lambda a: a.update(W0=np.array([Marker()], dtype=object)))
    assert cli.main(["evaluate", "--model", str(run), "--data", str(tmp_path / "DATA/test")]) == 2
    line = one_line_error(capsys, "evaluate")
    assert "pickled" in line and str(run / "model.npz") in line
    assert not os.path.exists(Marker.path)


def test_model_json_that_does_not_match_the_arrays(tmp_path, capsys, no_spark):
    run = _model_run(tmp_path)
    (run / "model.json").write_text(json.dumps({"layer_sizes": [784, 32, 10]}))
    assert cli.main(["evaluate", "--model", str(run), "--data", str(tmp_path / "DATA/test")]) == 2
    line = one_line_error(capsys, "evaluate")
    assert str(run / "model.npz") in line and "(784, 32)" in line, line


# --- runs, through `dist-mnist train` -------------------------------------------------------


def _train(tmp_path, *extra) -> int:
    return cli.main(["train", "--data", str(tmp_path / "DATA"), "--out", str(tmp_path / "RUN"), *extra])


def test_existing_run_is_refused(tmp_path, capsys, no_spark):
    run = _model_run(tmp_path)
    before = snapshot(run)
    assert _train(tmp_path) == 2
    line = one_line_error(capsys, "train")
    assert str(run) in line and "--overwrite" in line and "--resume" in line
    assert snapshot(run) == before


def test_resume_without_a_checkpoint(tmp_path, capsys, no_spark):
    assert _train(tmp_path, "--resume") == 2
    line = one_line_error(capsys, "train")
    assert "no checkpoint" in line and str(tmp_path / "RUN.partial") in line
    assert not (tmp_path / "RUN").exists() and not (tmp_path / "RUN.partial").exists()


def test_resume_with_a_different_config_names_the_keys(tmp_path, capsys, no_spark):
    staging = tmp_path / "RUN.partial"
    staging.mkdir()
    params = init_params([784, 1000, 10], 123)
    write_arrays(staging, params, params, {}, {"config": TrainConfig().to_dict()})
    before = snapshot(staging)
    assert _train(tmp_path, "--resume", "--set", "epochs=20", "--set", "learning_rate=0.01") == 2
    line = one_line_error(capsys, "train")
    assert "epochs: 15 -> 20" in line and "learning_rate: 0.006 -> 0.01" in line, line
    assert snapshot(staging) == before
