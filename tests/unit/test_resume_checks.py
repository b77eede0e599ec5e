"""--resume checks the checkpoint as a model is checked: every array float32, finite and of the
shape the config's layers give (parameters, updater state, outer velocity), and counters that
fit the run. A bad checkpoint is refused in one line naming the file and the array; it stays as
it was."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dist_mnist.driver import loop

from ..support.cli import one_line_error, snapshot
from ..support.tiny_runs import tiny_data, train_cli


def _set(key, value):
    return lambda arrays: arrays.__setitem__(key, value)


def _meta(**changes):
    def change(arrays):
        meta = json.loads(arrays["meta"].tobytes())
        meta.update(changes)
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)

    return change


def _nan_at(key):
    def change(arrays):
        a = arrays[key].copy()
        a.flat[0] = np.nan
        arrays[key] = a

    return change


CASES = {  # the checkpoint of round 6 of the tiny run: layers [784, 16, 10], sync, nesterovs
    "NaN weight": (_nan_at("param/W0"), "array param/W0 has NaN or inf values"),
    "float64 weight": (
        lambda a: a.__setitem__("param/b0", a["param/b0"].astype(np.float64)),
        "array param/b0 has dtype float64, expected float32",
    ),
    "weight of another shape": (
        _set("param/W1", np.zeros((16, 9), np.float32)),
        "array param/W1 has shape (16, 9), expected (16, 10)",
    ),
    "NaN velocity": (_nan_at("state/b1"), "array state/b1 has NaN or inf values"),
    "missing velocity": (lambda a: a.pop("state/W0"), "missing arrays ['state/W0']"),
    "outer velocity a sync run has not": (
        _set("outer/W0", np.zeros((784, 16), np.float32)),
        "unexpected arrays ['outer/W0']",
    ),
    "epoch past the run": (_meta(epoch=5), "past the run's 2 epochs"),
    "negative counter": (_meta(global_round=-1), "counter 'global_round' must be a non-negative integer"),
    "fractional counter": (_meta(epoch_seen=1.5), "counter 'epoch_seen' must be a non-negative integer"),
    "history of another length": (_meta(history=[{}, {}]), "'history' must hold one record per finished epoch"),
    "round past the epoch": (_meta(round_in_epoch=9, global_round=9), "does not fit 8 rounds an epoch"),
    "meta not JSON": (_set("meta", np.frombuffer(b"{not json", np.uint8)), "(array meta): not valid JSON"),
    "tracking run id not a string": (_meta(tracking_run_id=5), "'tracking_run_id' must be a run id"),
}


@pytest.fixture
def interrupted(tmp_path, monkeypatch):
    """DATA and RUN, where RUN was stopped after round 7: RUN.partial holds the round-6 checkpoint."""
    data = tiny_data(tmp_path / "DATA")
    real, seen = loop.apply_round, []

    def apply_round(*args, **kwargs):
        seen.append(1)
        if len(seen) == 7:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "apply_round", apply_round)
    assert train_cli(data, tmp_path / "RUN") == 130
    monkeypatch.undo()
    return data, tmp_path / "RUN"


@pytest.mark.parametrize("case", list(CASES))
def test_bad_checkpoint_is_refused_on_resume(interrupted, capsys, no_spark, case):
    data, run = interrupted
    path = run.with_name("RUN.partial") / "checkpoint.npz"
    change, fragment = CASES[case]
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    before = snapshot(path.parent)
    capsys.readouterr()
    assert train_cli(data, run, "--resume") == 2
    line = one_line_error(capsys, "train")
    assert str(path) in line and fragment in line, line
    assert snapshot(path.parent) == before and not run.exists()


def test_good_checkpoint_resumes(interrupted, capsys):
    data, run = interrupted
    assert train_cli(data, run, "--resume") == 0
    assert "resuming" in capsys.readouterr().out


def test_resume_reads_and_checks_the_checkpoint_and_the_run_directory_once(tmp_path, monkeypatch):
    import importlib

    from dist_mnist.driver import checkpoint

    from ..support.tiny_runs import interrupt_at_round

    prepare = importlib.import_module("dist_mnist.driver.prepare")  # the module: driver.prepare is its function

    data, run = tiny_data(tmp_path / "data"), tmp_path / "RUN"
    interrupt_at_round(monkeypatch, 5)  # after the checkpoint of round 3
    assert train_cli(data, run) == 130
    monkeypatch.undo()
    calls = {"read_checked": 0, "check_run_dir": 0}

    def counted(module, name):
        real = getattr(module, name)

        def call(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, call)

    counted(checkpoint, "read_checked")
    counted(prepare, "check_run_dir")
    assert train_cli(data, run, "--resume") == 0
    assert calls == {"read_checked": 1, "check_run_dir": 1}
