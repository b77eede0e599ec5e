"""The driver's side of tracking, without MLflow: what a tracker is told and when, a failing
tracker never failing the run, the run id in the checkpoint, and the package without MLflow."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest

from dist_mnist.config import load_config
from dist_mnist.driver import train
from dist_mnist.driver.checkpoint import read_arrays
from dist_mnist.driver.tracker import Tracker
from dist_mnist.tracking.facts import artifact_location, final_metrics, params_of, tracking_uri

from ..support import REPO
from ..support.tiny_runs import TINY, interrupt_at_round, tiny_data, train_cli

CONFIG = [*TINY, "checkpoint_every_rounds=0"]


class Recorder(Tracker):
    """A tracker that keeps what it is told; `broken`: the call that raises."""

    enabled = True

    def __init__(self, broken: str | None = None):
        self.calls: list[tuple[str, object]] = []
        self.broken = broken

    def _record(self, name, value):
        self.calls.append((name, value))
        if name == self.broken:
            raise ConnectionError(f"store gone in {name}\nsecond line")

    def start(self, run, log):
        self._record("start", run)
        return "run-42"

    def epoch(self, record):
        self._record("epoch", dict(record))

    def finish(self, result):
        self._record("finish", result)

    def fail(self, error):
        self._record("fail", error)

    def abandon(self):
        self.calls.append(("abandon", None))


def names(tracker: Recorder) -> list[str]:
    return [name for name, _ in tracker.calls]


def test_a_tracker_is_told_the_start_each_complete_epoch_and_the_result(tmp_path):
    data = tiny_data(tmp_path / "DATA")
    tracker = Recorder()
    result = train(None, load_config(None, CONFIG), str(data), tmp_path / "RUN", log=lambda *_: None, tracker=tracker)
    assert names(tracker) == ["start", "epoch", "epoch", "finish"]
    start = tracker.calls[0][1]
    assert start.config.workers == 2 and start.rounds_per_epoch == 8 and start.train_rows == 256
    assert start.resumed_run_id is None and start.history == [] and start.run_dir == tmp_path / "RUN"
    epochs = [value for name, value in tracker.calls if name == "epoch"]
    assert epochs == result.history  # complete records: with test accuracy
    assert all("test_accuracy" in e for e in epochs)
    assert tracker.calls[-1][1] is result


def test_ctrl_c_is_told_as_a_keyboard_interrupt_and_the_run_id_is_checkpointed(tmp_path, monkeypatch):
    data = tiny_data(tmp_path / "DATA")
    interrupt_at_round(monkeypatch, 11)
    tracker = Recorder()
    with pytest.raises(KeyboardInterrupt):
        train(None, load_config(None, CONFIG), str(data), tmp_path / "RUN", log=lambda *_: None, tracker=tracker)
    assert names(tracker) == ["start", "epoch", "fail"] and isinstance(tracker.calls[-1][1], KeyboardInterrupt)
    *_, meta = read_arrays(tmp_path / "RUN.partial")
    assert meta["tracking_run_id"] == "run-42"

    monkeypatch.undo()
    again = Recorder()
    train(None, load_config(None, CONFIG), str(data), tmp_path / "RUN", resume=True, log=lambda *_: None, tracker=again)
    start = again.calls[0][1]
    assert start.resumed_run_id == "run-42" and [h["epoch"] for h in start.history] == [1]


@pytest.mark.parametrize("broken", ["start", "epoch", "finish"])
def test_a_failing_tracker_is_one_warning_and_never_the_runs_failure(tmp_path, caplog, broken):
    data = tiny_data(tmp_path / "DATA")
    tracker = Recorder(broken)
    with caplog.at_level(logging.WARNING):
        result = train(
            None, load_config(None, CONFIG), str(data), tmp_path / "RUN", log=lambda *_: None, tracker=tracker
        )
    assert (tmp_path / "RUN" / "model.npz").is_file() and len(result.history) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"warning: tracking failed and is off for the rest of this run: ConnectionError: store gone in {broken}"
    ]
    assert names(tracker)[-2:] == [broken, "abandon"]  # nothing more after the failure


def test_resuming_a_tracked_run_without_tracking_says_how_to_go_on(tmp_path, monkeypatch, capsys):
    data = tiny_data(tmp_path / "DATA")
    interrupt_at_round(monkeypatch, 10)
    with pytest.raises(KeyboardInterrupt):
        train(None, load_config(None, TINY), str(data), tmp_path / "RUN", log=lambda *_: None, tracker=Recorder())
    monkeypatch.undo()
    assert train_cli(data, tmp_path / "RUN", "--resume") == 0
    assert "note: this run is tracked as MLflow run run-42; add --mlflow to go on" in capsys.readouterr().out


def test_old_checkpoints_without_a_run_id_still_resume(tmp_path, monkeypatch):
    data = tiny_data(tmp_path / "DATA")
    interrupt_at_round(monkeypatch, 10)
    with pytest.raises(KeyboardInterrupt):
        train(None, load_config(None, CONFIG), str(data), tmp_path / "RUN", log=lambda *_: None)
    monkeypatch.undo()
    *_, meta = read_arrays(tmp_path / "RUN.partial")
    assert "tracking_run_id" not in meta  # untracked: the checkpoint is as before
    tracker = Recorder()
    train(
        None, load_config(None, CONFIG), str(data), tmp_path / "RUN", resume=True, log=lambda *_: None, tracker=tracker
    )
    assert tracker.calls[0][1].resumed_run_id is None


def test_tracking_is_a_run_setting_of_boolean_type():
    assert load_config(None, ["tracking=true"]).tracking is True
    with pytest.raises(ValueError, match="tracking must be bool, got 'yes'"):
        load_config(None, ["tracking=yes"])
    from dist_mnist.config import RUN_SETTINGS

    assert "tracking" in RUN_SETTINGS  # --resume may switch it on or off


def test_where_runs_are_tracked(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlruns.db"
    assert artifact_location(tracking_uri()) == (tmp_path.resolve() / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000" and artifact_location(tracking_uri()) is None


def test_params_and_final_metrics_are_plain_values(tmp_path):
    data = tiny_data(tmp_path / "DATA")
    tracker = Recorder()
    result = train(None, load_config(None, CONFIG), str(data), tmp_path / "RUN", log=lambda *_: None, tracker=tracker)
    params = params_of(tracker.calls[0][1])
    assert params["layer_sizes"] == "[784, 16, 10]" and params["workers"] == "2" and params["tracking"] == "False"
    assert all(isinstance(v, str) for v in params.values())
    m = final_metrics(result)
    assert m["final_accuracy"] == result.scores["accuracy"]
    never_predicted = [c for c, p in enumerate(result.scores["per_class"]["precision"]) if p is None]
    assert never_predicted and all(f"precision_class_{c}" not in m for c in never_predicted)  # NaN: not logged
    assert m["phase_rounds_seconds"] >= 0 and m["rounds"] == 16


HIDE_MLFLOW = textwrap.dedent("""
    import sys
    class Hide:
        def find_spec(self, name, path=None, target=None):
            if name == "mlflow" or name.startswith("mlflow."):
                raise ImportError(f"No module named {name!r} (hidden by the test)")
    sys.meta_path.insert(0, Hide())
""")


def run_without_mlflow(code: str, cwd) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    return subprocess.run(
        [sys.executable, "-c", HIDE_MLFLOW + textwrap.dedent(code)],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_the_package_imports_and_trains_without_mlflow(tmp_path):
    data = tiny_data(tmp_path / "DATA")
    modules = sorted(
        ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        for p in (REPO / "dist_mnist").rglob("*.py")
        if p.name != "pyfunc_model.py"  # MLflow's models-from-code file: loaded by MLflow, never imported by us
    )
    done = run_without_mlflow(
        f"""
        import importlib
        for name in {modules!r}:
            importlib.import_module(name)
        from dist_mnist.cli import commands as cli
        argv = ["train", "--data", {str(data)!r}, "--out", "RUN"]
        for item in {TINY!r}:
            argv += ["--set", item]
        assert cli.main(argv) == 0
        assert cli.main([*argv[:4], "RUN2", *argv[5:], "--mlflow"]) == 1
        assert "mlflow" not in sys.modules
    """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "dist_mnist.tracking.fit" in modules and "dist_mnist.ml.estimator" in modules
    assert (tmp_path / "RUN" / "model.npz").is_file() and not (tmp_path / "RUN2").exists()
    assert not (tmp_path / "RUN2.partial").exists()
    assert done.stderr.strip() == (
        "dist-mnist train: error: tracking needs MLflow: pip install 'dist-mnist[mlflow]' "
        "(or leave out --mlflow / tracking = true)"
    )
    assert json.loads((tmp_path / "RUN" / "model.json").read_text())["config"]["tracking"] is False
