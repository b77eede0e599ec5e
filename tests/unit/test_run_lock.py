"""One train at a time in a run directory: an OS lock held for the run's life, dropped by the
kernel when its holder dies. Two real processes: a child `dist-mnist train` paused mid-run
(after its round-3 checkpoint), and this one trying to train into the same RUN."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dist_mnist.files.model import load_model
from dist_mnist.files.paths import lock_path, run_lock

from ..support.cli import one_line_error, snapshot
from ..support.tiny_runs import TINY, tiny_data, train_cli

# A `dist-mnist train` that stops before its 5th update, says so, and waits for a line on stdin.
CHILD = """
import json, sys
from dist_mnist.cli import commands as cli
from dist_mnist import driver
from dist_mnist.driver import loop

real, seen = loop.apply_round, []

def apply_round(*args, **kwargs):
    seen.append(1)
    if len(seen) == 5:
        print("paused", flush=True)
        sys.stdin.readline()
    return real(*args, **kwargs)

loop.apply_round = apply_round
sys.exit(cli.main(json.loads(sys.argv[1])))
"""


def _paused_train(data: Path, run: Path) -> subprocess.Popen:
    argv = ["train", "--data", str(data), "--out", str(run)]
    for item in TINY:
        argv += ["--set", item]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(argv)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in child.stdout:
        if line == "paused\n":
            return child
    child.kill()
    raise AssertionError(f"the child train never paused: {child.communicate()}")


@pytest.fixture
def data(tmp_path):
    return tiny_data(tmp_path / "DATA")


def test_a_second_train_into_a_running_run_is_refused(data, tmp_path, capsys, no_spark):
    run = tmp_path / "RUN"
    child = _paused_train(data, run)
    try:
        staging = snapshot(tmp_path / "RUN.partial")
        assert "checkpoint.npz" in staging  # the child checkpointed at round 3
        for flags in ([], ["--overwrite"], ["--resume"]):
            assert train_cli(data, run, *flags) == 1, flags
            line = one_line_error(capsys, "train")
            assert f"{run} is in use by another train (pid {child.pid})" in line, line
            assert snapshot(tmp_path / "RUN.partial") == staging  # nothing of the child's touched
        child.stdin.write("\n")
        out, err = child.communicate(timeout=120)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, err
    assert f"model written to {run}" in out
    assert load_model(run)[0]
    assert not lock_path(run).exists() and not (tmp_path / "RUN.partial").exists()


def test_the_lock_dies_with_its_holder(data, tmp_path, capsys):
    run = tmp_path / "RUN"
    child = _paused_train(data, run)
    os.kill(child.pid, signal.SIGKILL)
    child.communicate()
    assert lock_path(run).exists()  # left behind by the killed holder, but no longer locked
    assert train_cli(data, run, "--resume") == 0  # from the child's round-3 checkpoint
    assert train_cli(data, tmp_path / "straight") == 0
    resumed, straight = load_model(run)[0], load_model(tmp_path / "straight")[0]
    for k in straight:
        np.testing.assert_array_equal(resumed[k], straight[k], err_msg=k)


def test_run_lock_is_reentrant_and_names_its_holder(tmp_path):
    run = tmp_path / "runs" / "x"
    with run_lock(run):
        assert lock_path(run).read_text() == f"{os.getpid()}\n"
        with run_lock(run):  # the CLI takes it, then train() again
            pass
        assert lock_path(run).exists()
        holder = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys; from dist_mnist.files.paths import run_lock\nwith run_lock(sys.argv[1]): pass",
                str(run),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert holder.returncode == 1
        assert f"RunInUse: {run} is in use by another train (pid {os.getpid()})" in holder.stderr
    assert not lock_path(run).exists()
    with run_lock(run):  # free again
        assert lock_path(run).exists()
