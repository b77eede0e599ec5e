"""`train --mlflow` end to end on the tiny in-process runs (no JVM), each test with its own
temporary SQLite store: what a run logs, --resume continuing the same MLflow run, Ctrl-C and a
failure ending it KILLED and FAILED, an unreachable store being one warning and a trained model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dist_mnist.driver.checkpoint import read_arrays
from dist_mnist.files.model import load_model
from dist_mnist.nn.model import predict

from ..support import REPO
from ..support.tiny_runs import TINY, interrupt_at_round, tiny_data, train_cli

mlflow = pytest.importorskip("mlflow")

CHECKSUMS = {"train-images-idx3-ubyte": "a" * 64, "t10k-labels-idx1-ubyte": "b" * 64}


@pytest.fixture
def data(tmp_path):
    """The tiny dataset, with a metadata.json that records checksums as ingest's does."""
    root = tiny_data(tmp_path / "DATA")
    (root / "metadata.json").write_text(json.dumps({"n_in": 784, "n_classes": 10, "sha256_uncompressed": CHECKSUMS}))
    return root


def only_run(experiment: str = "dist-mnist"):
    runs = mlflow.search_runs(experiment_names=[experiment], output_format="list")
    assert len(runs) == 1, [r.info.run_id for r in runs]
    return runs[0]


def history(run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in mlflow.MlflowClient().get_metric_history(run_id, key))


def test_a_two_epoch_run_logs_params_metrics_artifacts_and_its_model(mlflow_store, data, tmp_path):
    run_dir = tmp_path / "RUN"
    assert train_cli(data, run_dir, "--mlflow") == 0
    run = only_run()
    assert run.info.status == "FINISHED" and run.info.run_name == "RUN"
    p, tags, m = run.data.params, run.data.tags, run.data.metrics
    assert (p["layer_sizes"], p["mode"], p["epochs"], p["batch_size"], p["workers"]) == (
        "[784, 16, 10]",
        "sync",
        "2",
        "32",
        "2",
    )
    assert (p["learning_rate"], p["tracking"], p["rounds_per_epoch"], p["train_rows"]) == ("0.006", "True", "8", "256")
    assert tags["transport"] == "inprocess" and tags["numpy_version"] == np.__version__
    assert {tags[f"data.sha256.{k}"] for k in CHECKSUMS} == set(CHECKSUMS.values())
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], check=False, capture_output=True, text=True)
    if commit.returncode == 0:
        assert tags["mlflow.source.git.commit"] == commit.stdout.strip()

    # per epoch, step = epoch: what metrics.json holds
    epochs = json.loads((run_dir / "metrics.json").read_text())["epochs"]
    for key in ("train_loss", "test_accuracy", "samples_per_second"):
        steps, values = zip(*history(run.info.run_id, key))
        assert steps == (1, 2) and values == pytest.approx([e[key] for e in epochs]), key
    # the final scores, per class, the phases
    evaluation = json.loads((run_dir / "evaluation.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1"):
        assert m[f"final_{key}"] == pytest.approx(evaluation[key])
    f1 = evaluation["per_class"]["f1"]
    assert [m.get(f"f1_class_{c}") for c in range(10)] == pytest.approx(list(f1))
    assert m["phase_rounds_seconds"] > 0 and m["rounds"] == 16

    # artifacts: the run's files, the report, the ONNX graph
    client = mlflow.MlflowClient()
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"model.json", "metrics.json", "evaluation.txt", "report", "onnx"} <= names, names
    report = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {"report/index.html", "report/training.png", "report/confusion.png", "report/per_class.png"} <= report
    got = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="model.json", dst_path=str(tmp_path)
    )
    assert json.loads(Path(got).read_text()) == json.loads((run_dir / "model.json").read_text())
    assert (tmp_path / "store" / "mlartifacts").is_dir()  # beside the SQLite store, as docs/tracking.md says

    # the pyfunc model scores the Parquet as the run's model.npz does, from its image column
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    frame = pd.read_parquet(data / "test")
    scored = model.predict(frame)
    params, _ = load_model(run_dir)
    images = np.stack([np.frombuffer(b, np.uint8) for b in frame["image"]])
    assert np.array_equal(scored["prediction"].to_numpy(), predict(params, images).astype(np.float64))
    assert model.metadata.get_input_schema().input_names() == ["image"]
    assert not list((tmp_path / "store").rglob("*.pkl"))  # models from code: nothing pickled


def test_resume_continues_the_same_mlflow_run_and_ctrl_c_marks_it_killed(mlflow_store, data, tmp_path):
    run_dir = tmp_path / "RUN"
    with pytest.MonkeyPatch.context() as mp:
        interrupt_at_round(mp, 11)  # in epoch 2: the checkpoint of round 9 holds epoch 1 complete
        assert train_cli(data, run_dir, "--mlflow") == 130
    killed = only_run()
    assert killed.info.status == "KILLED"
    assert killed.data.tags["dist_mnist.error"].startswith("Interrupted: interrupted at epoch")
    *_, meta = read_arrays(run_dir.with_name("RUN.partial"))
    assert meta["tracking_run_id"] == killed.info.run_id

    assert train_cli(data, run_dir, "--resume", "--mlflow") == 0
    resumed = only_run()
    assert resumed.info.run_id == killed.info.run_id and resumed.info.status == "FINISHED"
    for key in ("train_loss", "test_accuracy"):  # each epoch once, though both processes saw epoch 1
        assert [step for step, _ in history(resumed.info.run_id, key)] == [1, 2], key
    assert mlflow.pyfunc.load_model(f"runs:/{resumed.info.run_id}/model").metadata.run_id == resumed.info.run_id


def test_ctrl_c_while_logging_the_end_marks_the_run_killed_and_keeps_the_model(
    mlflow_store, data, tmp_path, monkeypatch, capsys
):
    from dist_mnist.tracking import model as models

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "log_pyfunc", interrupted)
    assert train_cli(data, tmp_path / "RUN", "--mlflow") == 130
    err = capsys.readouterr().err
    assert f"interrupted during MLflow tracking; the model is written to {tmp_path / 'RUN'}" in err
    assert (tmp_path / "RUN" / "model.npz").is_file()
    assert only_run().info.status == "KILLED"


def test_a_failed_run_is_marked_failed(mlflow_store, data, tmp_path, capsys):
    assert train_cli(data, tmp_path / "RUN", "--mlflow", sets=["learning_rate=1e30"]) == 1
    run = only_run()
    assert run.info.status == "FAILED"
    assert "Diverged: loss became" in run.data.tags["dist_mnist.error"]
    assert "loss became" in capsys.readouterr().err


def test_an_experiment_name_implies_tracking(mlflow_store, data, tmp_path):
    assert train_cli(data, tmp_path / "RUN", "--experiment", "tiny") == 0
    assert only_run("tiny").info.status == "FINISHED"


def test_a_store_that_cannot_be_opened_is_one_warning_and_the_run_trains(data, tmp_path, monkeypatch, caplog):
    (tmp_path / "not-a-dir").write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/not-a-dir/mlruns.db")
    assert train_cli(data, tmp_path / "RUN", "--mlflow") == 0
    assert (tmp_path / "RUN" / "model.npz").is_file()
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and r.name.startswith("dist_mnist")]
    assert len(warned) == 1 and warned[0].startswith("warning: MLflow tracking failed and is off"), warned
    assert mlflow.active_run() is None
    mlflow.set_tracking_uri(None)


def test_an_unreachable_server_is_one_line_on_stderr_and_the_run_trains(data, tmp_path):
    """The command as a user runs it, against a loopback port nothing listens on."""
    import socket

    with socket.socket() as s:  # a free port, closed again: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = ["train", "--data", str(data), "--out", str(tmp_path / "RUN"), "--mlflow"]
    for item in TINY:
        argv += ["--set", item]
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
    env.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)
    done = subprocess.run(
        [sys.executable, "-m", "dist_mnist.cli", *argv],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "RUN" / "model.npz").is_file()
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("warning: MLflow tracking failed and is off"), done.stderr
    assert "model written to" in done.stdout


def test_a_locked_store_is_one_warning_and_the_run_ends_failed_once_it_answers(mlflow_store, data, tmp_path):
    """The store locked by another process (BEGIN EXCLUSIVE, as a backup or a second writer holds it)
    while the run trains: one warning line, no MLflow or SQLAlchemy dumps, the model written, and
    the MLflow run FAILED (not RUNNING) once the store answers again."""
    import sqlite3
    import time

    from ..support.processes import Driver

    argv = [sys.executable, "-m", "dist_mnist.cli", "train", "--data", str(data), "--out", str(tmp_path / "RUN")]
    slow = [*TINY, "layer_sizes=[784, 512, 10]", "epochs=400", "checkpoint_every_rounds=0"]
    argv += [arg for item in slow for arg in ("--set", item)] + ["--mlflow"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_store}
    driver = Driver(argv, tmp_path / "out.log", env, tmp_path)
    try:
        driver.wait_for_line(r"^MLflow: logging to run ", timeout=120)
        store = sqlite3.connect(mlflow_store.removeprefix("sqlite:///"), isolation_level=None, timeout=60)
        store.execute("BEGIN EXCLUSIVE")
        time.sleep(40)
        store.execute("ROLLBACK")
        store.close()
        assert driver.wait(timeout=600) == 0, driver.tail()
    finally:
        driver.stop()
    assert (tmp_path / "RUN" / "model.npz").is_file()
    out = driver.output.splitlines()
    noise = [line for line in out if "sqlalchemy" in line.lower() or "Traceback" in line or "[SQL:" in line]
    assert noise == [], noise
    warnings = [line for line in out if "MLflow tracking" in line]
    assert warnings[0].startswith("warning: MLflow tracking failed and is off for the rest of this run: "), out
    assert len(warnings) <= 2, warnings  # and, where it retried at the end, that the run is marked FAILED
    assert only_run().info.status == "FAILED"
