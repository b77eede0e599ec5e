"""A real driver killed with SIGKILL after its first checkpoint resumes to the same model."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from dist_mnist.config import load_config
from dist_mnist.driver import train
from dist_mnist.driver.checkpoint import read_arrays
from dist_mnist.files.model import load_model

from ..support import REPO

pytestmark = pytest.mark.slow  # three Spark drivers: about a minute

# 1024 rows / 64 = 16 rounds an epoch, 2 epochs; the first checkpoint after round 4
SETTINGS = ["mode=sync", "layer_sizes=[784, 32, 10]", "batch_size=64", "epochs=2", "checkpoint_every_rounds=4"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PYSPARK_SUBMIT_ARGS"] = "--conf spark.ui.enabled=false --conf spark.driver.host=127.0.0.1 pyspark-shell"
    return env


def _train_cmd(data, run, *extra) -> list[str]:
    sets = [a for s in SETTINGS for a in ("--set", s)]
    return [
        sys.executable,
        "-m",
        "dist_mnist.cli",
        "train",
        "--master",
        "local[2]",
        "--data",
        str(data),
        "--out",
        str(run),
        *sets,
        *extra,
    ]


def test_sigkill_then_resume_equals_uninterrupted(spark, datasets, tmp_path, quiet):
    data, run = datasets[2], tmp_path / "RUN"
    checkpoint = tmp_path / "RUN.partial" / "checkpoint.npz"
    with open(tmp_path / "killed.log", "wb") as log:
        # its own process group, so the kill reaches the JVM and Python workers it started
        proc = subprocess.Popen(
            _train_cmd(data, run),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=_env(),
            cwd=tmp_path,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 300
            while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
            assert checkpoint.exists(), "no checkpoint within 300 s"
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not run.exists()
    _, _, _, meta = read_arrays(tmp_path / "RUN.partial")
    assert 4 <= meta["global_round"] < 32

    resumed = subprocess.run(
        _train_cmd(data, run, "--resume"),
        capture_output=True,
        text=True,
        env=_env(),
        cwd=tmp_path,
        timeout=600,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout

    # the uninterrupted run, on the shared session (same code, same NumPy: bit-identical)
    train(spark, load_config(None, SETTINGS), str(data), str(tmp_path / "ONE"), log=quiet)
    a, _ = load_model(tmp_path / "ONE")
    b, _ = load_model(run)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_ctrl_c_stops_cleanly_and_says_how_to_resume(datasets, tmp_path):
    data, run = datasets[2], tmp_path / "RUN"
    checkpoint = tmp_path / "RUN.partial" / "checkpoint.npz"
    proc = subprocess.Popen(
        _train_cmd(data, run),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None and checkpoint.exists(), "no checkpoint within 300 s"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("dist-mnist")]
    assert len(lines) == 1 and "--resume" in lines[0] and str(tmp_path / "RUN.partial") in lines[0], err[-3000:]
    assert "stopped by Ctrl-C" in lines[0]
    _, _, _, meta = read_arrays(tmp_path / "RUN.partial")  # the checkpoint is whole
    assert meta["global_round"] >= 4
