"""Ctrl-C in the first seconds of a real `dist-mnist train`: exit 130 and one line on stderr,
never a py4j or Java trace, no JVM left behind, and no RUN.partial that --resume would refuse
(none at all before the first checkpoint; after it, one that --resume continues)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from ..support.cli import error_lines

pytestmark = pytest.mark.slow

ARGS = ["--master", "local[2]", "--set", "epochs=2", "--set", "layer_sizes=[784, 16, 10]"]
NOT_STARTED = "dist-mnist train: error: interrupted before training started; nothing was written"


def _start(data, run, out_file, *extra) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "DIST_MNIST_SPARK_LOG_LEVEL"}
    argv = [sys.executable, "-m", "dist_mnist.cli", "train", "--data", str(data), "--out", str(run), *ARGS, *extra]
    # its own process group, which a terminal's Ctrl-C reaches whole: Python, spark-submit and the JVM
    return subprocess.Popen(argv, stdout=out_file, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _group_gone(pgid: int, timeout: float = 60) -> bool:
    """Whether every process of the group has exited (the JVM ends when the driver does)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.5)
    return False


def _wait_for(path, text: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while text not in path.read_text():
        assert proc.poll() is None and time.monotonic() < deadline, f"no {text!r} in stdout: {path.read_text()}"
        time.sleep(0.05)


@pytest.mark.parametrize("when", ["0.5 s", "2 s", "line 'training ['", "line 'transport:'"])
def test_ctrl_c_at_start_up(datasets, tmp_path, when):
    run, stdout = tmp_path / "runs" / "R", tmp_path / "stdout.txt"
    with open(stdout, "w") as out:
        proc = _start(datasets[2], run, out)
        try:
            if when.endswith(" s"):
                time.sleep(float(when.split()[0]))  # importing, checking, or starting the JVM
            else:  # the barrier stage starting; the first round
                _wait_for(stdout, when.split("'")[1], proc)
            os.killpg(proc.pid, signal.SIGINT)
            err = proc.communicate(timeout=300)[1]
            assert _group_gone(proc.pid), "a process of the run outlived it"
        finally:
            with contextlib.suppress(ProcessLookupError):  # whatever the test found, leave none of the run's processes
                os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err[-3000:]
    lines = error_lines(err)
    if when != "line 'transport:'":
        assert lines == [NOT_STARTED]
        assert not (run.parent / "R.partial").exists() and not run.exists()
        return
    # the loop had started: the round finishes, its checkpoint is saved, and --resume takes it
    assert lines == [
        f"dist-mnist train: error: stopped by Ctrl-C after round 1 (epoch 2); checkpoint saved in "
        f"{run.parent / 'R.partial'} (resume with --resume)"
    ], lines
    with open(stdout, "w") as out:
        resumed = _start(datasets[2], run, out, "--resume")
        err = resumed.communicate(timeout=600)[1]
    assert resumed.returncode == 0, err[-3000:]
    assert "resuming" in stdout.read_text() and (run / "model.npz").exists()
