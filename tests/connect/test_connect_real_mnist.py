"""The tutorial from a Spark Connect client, as a user runs it: `dist-mnist train --remote`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ..support.mnist import TUTORIAL_ACCURACY

pytestmark = [pytest.mark.slow, pytest.mark.mnist]


def test_the_tutorial_under_connect_reaches_the_tutorial_accuracy(connect_server, mnist_parquet, tmp_path):
    data, run = mnist_parquet, tmp_path / "RUN"
    env = {k: v for k, v in os.environ.items() if k != "SPARK_CONNECT_MODE_ENABLED"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dist_mnist.cli",
            "train",
            "--remote",
            connect_server.url,
            "--data",
            str(data),
            "--out",
            str(run),
        ],
        capture_output=True,
        text=True,
        timeout=3600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    transport = [line for line in lines if line.startswith("transport:")]
    assert transport and "persistent barrier stage of 2 tasks" in transport[0] and "CURVE" in transport[0], lines[:5]
    metrics = json.loads((run / "metrics.json").read_text())
    print(
        "connect:",
        [round(h.get("test_accuracy", 0), 4) for h in metrics["epochs"]],
        f"{metrics['epochs'][-1]['elapsed_seconds']:.0f}s",
    )
    assert metrics["final"]["accuracy"] >= TUTORIAL_ACCURACY
