"""Where a command may write: never over, inside or around its input, only where it can write,
and --overwrite keeps what train did not write. Every refusal is one line, before anything
is touched (the inputs byte for byte as before, no Spark started)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from dist_mnist.cli import commands as cli
from dist_mnist.data import mnist
from dist_mnist.files.model import load_model, save_model
from dist_mnist.nn.model import init_params

from ..support.cli import one_line_error, snapshot
from ..support.fakes import fake_mnist_dir
from ..support.tiny_runs import tiny_data, train_cli


@pytest.fixture
def data(tmp_path):
    return tiny_data(tmp_path / "ws" / "DATA")


# --- train: --out against --data --------------------------------------------------------------

OUT_CASES = {
    "the same directory": (lambda d: d, "is --data"),
    "inside it": (lambda d: d / "test" / "run", "is inside --data"),
    "its parent": (lambda d: d.parent, "contains --data"),
    "a symlink to it": (lambda d: _link(d.parent.parent / "link", d), "is --data"),
    "inside it through a symlink": (lambda d: _link(d.parent.parent / "link", d) / "run", "is inside --data"),
}


def _link(link: Path, target: Path) -> Path:
    link.symlink_to(target, target_is_directory=True)
    return link


@pytest.mark.parametrize("case", list(OUT_CASES))
@pytest.mark.parametrize("flags", [[], ["--overwrite"]], ids=["plain", "overwrite"])
def test_train_out_overlapping_data_is_refused(data, capsys, no_spark, case, flags):
    where, relation = OUT_CASES[case]
    out = where(data)
    before = snapshot(data.parent)
    assert train_cli(data, out, *flags) == 2
    line = one_line_error(capsys, "train")
    assert f"--out {out}" in line and relation in line and str(data) in line, line
    assert "nothing was touched" in line
    assert snapshot(data.parent) == before  # the dataset and everything beside it, byte for byte


def test_train_staging_directory_overlapping_data_is_refused(tmp_path, capsys, no_spark):
    data = tiny_data(tmp_path / "RUN.partial")  # RUN's partial directory would be the dataset
    before = snapshot(data)
    assert train_cli(data, tmp_path / "RUN", "--overwrite") == 2
    assert "partial directory" in one_line_error(capsys, "train")
    assert snapshot(data) == before


def test_train_beside_the_data_still_runs(data, capsys):
    assert train_cli(data, data.parent / "DATA-run") == 0  # a sibling whose name starts the same
    assert load_model(data.parent / "DATA-run")[0]


# --- train: where RUN cannot be written, found before training ------------------------------


def test_dangling_symlink_out_is_refused_before_training(data, tmp_path, capsys, no_spark):
    out = tmp_path / "RUN"
    out.symlink_to(tmp_path / "gone")
    assert train_cli(data, out) == 2
    line = one_line_error(capsys, "train")
    assert str(out) in line and "does not exist" in line and str(tmp_path / "gone") in line, line
    assert out.is_symlink() and not (tmp_path / "RUN.partial").exists()


def test_out_that_is_a_file_is_refused(data, tmp_path, capsys, no_spark):
    (tmp_path / "RUN").write_text("mine")
    assert train_cli(data, tmp_path / "RUN", "--overwrite") == 2
    assert "is a file" in one_line_error(capsys, "train")
    assert (tmp_path / "RUN").read_text() == "mine"


def test_out_under_a_file_is_refused(data, tmp_path, capsys, no_spark):
    (tmp_path / "notes").write_text("mine")
    assert train_cli(data, tmp_path / "notes" / "RUN") == 2
    assert "is not a directory" in one_line_error(capsys, "train")


def _unwritable_dir(tmp_path: Path) -> Path:
    """A directory this process cannot create files in (root ignores modes: /sys refuses root too)."""
    if os.geteuid() != 0:
        d = tmp_path / "readonly"
        d.mkdir(mode=0o555)
        return d
    if not os.path.isdir("/sys"):
        pytest.skip("running as root without /sys: no directory here refuses root's writes")
    return Path("/sys")


def test_unwritable_out_is_refused_before_training(data, tmp_path, capsys, no_spark):
    parent = _unwritable_dir(tmp_path)
    out = parent / "dist-mnist-test-run"
    assert train_cli(data, out) == 2
    line = one_line_error(capsys, "train")
    assert str(out) in line and f"cannot write in {parent}" in line, line
    assert not out.exists()


# --- the other commands' outputs --------------------------------------------------------------


def test_ingest_out_overlapping_source_is_refused(tmp_path, capsys, monkeypatch):
    src, fake = fake_mnist_dir(tmp_path / "src", 30, 20)
    monkeypatch.setattr(mnist, "SHA256_UNCOMPRESSED", dict(fake["sha256"]))
    before = snapshot(tmp_path)
    for out, relation in ((src, "is --source"), (src / "parquet", "is inside --source"), (tmp_path, "contains")):
        assert cli.main(["ingest", "--source", str(src), "--out", str(out), "--overwrite"]) == 2
        line = one_line_error(capsys, "ingest")
        assert relation in line and str(src) in line, line
    assert snapshot(tmp_path) == before
    assert cli.main(["ingest", "--source", str(src), "--out", str(tmp_path / "DATA")]) == 0  # beside it: fine


@pytest.fixture
def model_run(tmp_path):
    run = tmp_path / "RUN"
    run.mkdir()
    save_model(run, init_params([784, 16, 10], 1), {"layer_sizes": [784, 16, 10]})
    return run


@pytest.mark.parametrize(
    "out, fragment",
    [
        ("RUN", "contains --model's model.npz"),
        ("RUN/model.npz", "is --model's model.npz"),
        ("DATA/test/predictions", "is inside --data"),
    ],
)
def test_predict_out_overlapping_its_inputs_is_refused(tmp_path, model_run, capsys, no_spark, out, fragment):
    data = tiny_data(tmp_path / "DATA")
    before = snapshot(tmp_path)
    argv = ["predict", "--model", str(model_run), "--data", str(data / "test"), "--out", str(tmp_path / out)]
    assert cli.main([*argv, "--overwrite"]) == 2
    assert fragment in one_line_error(capsys, "predict")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("name", ["model.json", "model.npz"])
def test_evaluate_json_over_the_model_is_refused(tmp_path, model_run, capsys, no_spark, name):
    before = snapshot(model_run)
    argv = ["evaluate", "--model", str(model_run), "--data", str(tmp_path / "DATA/test")]
    assert cli.main([*argv, "--json", str(model_run / name)]) == 2
    assert f"is --model's {name}" in one_line_error(capsys, "evaluate")
    assert snapshot(model_run) == before


def test_export_over_the_model_is_refused(model_run, capsys):
    pytest.importorskip("onnx")
    before = snapshot(model_run)
    assert cli.main(["export", str(model_run), "--onnx", str(model_run / "model.npz"), "--overwrite"]) == 2
    assert "is RUN's model.npz" in one_line_error(capsys, "export")
    assert snapshot(model_run) == before


# --- --overwrite keeps what train did not write; the end of train says where the model is ----


def test_overwrite_keeps_files_train_did_not_write(data, tmp_path, capsys):
    run = tmp_path / "RUN"
    assert train_cli(data, run) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"model written to {run} (model.npz, model.json)"
    first = load_model(run)[0]
    (run / "model.onnx").write_bytes(b"exported from the first model")
    (run / "notes.txt").write_text("mine")
    (run / "report").mkdir()
    (run / "report" / "index.html").write_text("<html>")
    (run / "latest").symlink_to("model.npz")
    mine = {k: v for k, v in snapshot(run).items() if k in ("model.onnx", "notes.txt", "report/index.html")}

    assert train_cli(data, run, "--overwrite", sets=["seed=7"]) == 0
    out = capsys.readouterr().out
    assert f"kept in {run} what train did not write: latest, model.onnx, notes.txt, report/" in out, out
    assert out.strip().splitlines()[-1] == f"model written to {run} (model.npz, model.json)"
    assert {k: v for k, v in snapshot(run).items() if k in mine} == mine
    assert os.readlink(run / "latest") == "model.npz"
    second = load_model(run)[0]
    assert not np.array_equal(first["W0"], second["W0"])  # the new model is in place
    assert sorted(os.listdir(tmp_path)) == ["RUN", "ws"]  # no staging, old or lock file left


def test_a_failed_overwrite_leaves_the_old_run_whole(data, tmp_path, capsys, monkeypatch):
    run = tmp_path / "RUN"
    assert train_cli(data, run) == 0
    (run / "model.onnx").write_bytes(b"exported")
    before = snapshot(run)
    from dist_mnist.driver import runs

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "replace_directory", broken)  # the swap itself fails, after the carrying over
    assert train_cli(data, run, "--overwrite", sets=["seed=7"]) == 130
    assert snapshot(run) == before
    monkeypatch.undo()
    assert train_cli(data, run, "--resume", sets=["seed=7"]) == 0  # the finished partial directory is swapped in
    assert load_model(run)[1]["config"]["seed"] == 7 and (run / "model.onnx").read_bytes() == b"exported"
    assert not (tmp_path / "RUN.partial").exists()


@pytest.mark.parametrize("where", ["before the rounds", "in the first round"])
def test_a_ctrl_c_before_the_first_checkpoint_says_what_had_started(data, tmp_path, capsys, monkeypatch, where):
    """Between the run directory's checks and the rounds (pyspark importing, say) nothing has
    trained; once the rounds have begun, the first checkpoint is what is missing."""
    from dist_mnist import driver
    from dist_mnist.driver import loop

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    if where == "before the rounds":
        monkeypatch.setattr(driver, "train_prepared", interrupted)
    else:
        monkeypatch.setattr(loop, "apply_round", interrupted)
    assert train_cli(data, tmp_path / "RUN") == 130
    before = "training started" if where == "before the rounds" else "the first checkpoint"
    assert (
        one_line_error(capsys, "train") == f"dist-mnist train: error: interrupted before {before}; nothing was written"
    )
    assert sorted(os.listdir(tmp_path)) == ["ws"]  # no RUN, no RUN.partial
