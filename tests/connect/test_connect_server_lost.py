"""A Spark Connect server killed mid-training: the client ends within connect_timeout, in one line
that says which server stopped answering and where the checkpoint is; it never waits forever."""

from __future__ import annotations

import os
import re
import signal
import sys
import time

import pytest

from ..support import REPO
from ..support.datasets import write_dataset
from ..support.fakes import learnable
from ..support.processes import Driver
from . import server
from .client import classic_env

SETS = ["layer_sizes=[784, 16, 10]", "mode=sync", "batch_size=32", "epochs=500", "workers=2"]
SETS += ["checkpoint_every_rounds=16", "log_every_rounds=16", "connect_timeout=10"]


def test_a_killed_server_ends_the_client_in_one_line_with_the_checkpoint(tmp_path):
    pytest.importorskip("grpc", reason="Spark Connect needs pyspark's connect extra")
    data = write_dataset(tmp_path / "DATA", learnable(512, seed=0), learnable(128, seed=1), 2)
    running = server.start(tmp_path / "server")
    run = tmp_path / "RUN"
    argv = [sys.executable, "-m", "dist_mnist.cli", "train", "--remote", running.url, "--data", str(data)]
    argv += ["--out", str(run)] + [arg for item in SETS for arg in ("--set", item)]
    driver = Driver(argv, tmp_path / "client.log", classic_env(), REPO)
    try:
        driver.wait_for_line(r"^transport: persistent barrier stage", timeout=300)
        driver.wait_for_line(r"epoch 3/500 round 16/16", timeout=300)  # checkpoints written
        os.killpg(running.pid, signal.SIGKILL)  # the server JVM and its executors, at once
        killed = time.monotonic()
        status = driver.wait(timeout=180)
        waited = time.monotonic() - killed
    finally:
        driver.stop()
        running.stop()
    assert status == 1, driver.tail()
    errors = [line for line in driver.lines if line.startswith("dist-mnist train: error: ")]
    assert len(errors) == 1 and "Traceback" not in driver.output, driver.tail()
    assert re.fullmatch(
        rf"dist-mnist train: error: the Spark Connect server at {re.escape(running.url)} stopped answering "
        rf"\(10 s\); the last checkpoint is in {re.escape(str(run))}\.partial \(resume with --resume\)",
        errors[0],
    ), errors[0]
    assert waited < 90, waited  # the timeout and a watch every 5 s, not Spark's ten minutes of retries
    assert (tmp_path / "RUN.partial" / "checkpoint.npz").is_file()
