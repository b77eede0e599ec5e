"""Full MNIST on Spark (see tests/support/mnist.py): the tutorial's recipe reaches DL4J's accuracy
through spark-submit. tests/unit/test_real_mnist.py checks the ingest and the recipe without Spark."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from dist_mnist.data.ingest import ingest

from ..support import REPO
from ..support.mnist import TUTORIAL_ACCURACY

pytestmark = [pytest.mark.slow, pytest.mark.mnist]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def test_spark_trainer_reaches_the_tutorial_accuracy(mnist_parquet, tmp_path):
    """The CI accuracy run: spark-submit, default config, local[2]."""
    data = mnist_parquet
    run = tmp_path / "RUN"
    done = subprocess.run(
        [
            "spark-submit",
            "--master",
            "local[2]",
            "--conf",
            "spark.ui.enabled=false",
            str(REPO / "jobs" / "train.py"),
            "--data",
            str(data),
            "--out",
            str(run),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=3600,
        env=_env(SPARK_CONF_DIR=str(REPO / "conf")),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    print(
        "spark:",
        [round(h.get("test_accuracy", 0), 4) for h in metrics["epochs"]],
        f"{metrics['epochs'][-1]['elapsed_seconds']:.0f}s",
    )
    assert metrics["final"]["accuracy"] >= TUTORIAL_ACCURACY
    assert "Confusion Matrix" in done.stdout
    assert not any(line.startswith("Examples labeled as") for line in done.stdout.splitlines())
    assert f"{run}/evaluation.txt" in done.stdout  # where the full stats() text is


def test_four_workers_on_a_seven_file_ingest_reach_the_tutorial_accuracy(mnist_dir, tmp_path):
    """Workers are a setting, not a file count: W=4 over 7 part files, default config, local[2].

    4 workers need 4 slots at once: on local[2] the run falls back to one Spark job a round
    (and says so); the model is the one any transport gives.
    """
    data = tmp_path / "DATA"
    ingest(mnist_dir, data, partitions=7)
    run = tmp_path / "RUN"
    done = subprocess.run(
        [
            "spark-submit",
            "--master",
            "local[2]",
            "--conf",
            "spark.ui.enabled=false",
            str(REPO / "jobs" / "train.py"),
            "--data",
            str(data),
            "--out",
            str(run),
            "--set",
            "workers=4",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=3600,
        env=_env(SPARK_CONF_DIR=str(REPO / "conf")),
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "transport: one Spark job a round, because 4 workers need 4 task slots" in done.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    meta = json.loads((run / "model.json").read_text())
    assert meta["config"]["workers"] == 4 and meta["local_learning_rate"] == pytest.approx(0.012)
    print("W=4:", [round(h.get("test_accuracy", 0), 4) for h in metrics["epochs"]])
    assert metrics["final"]["accuracy"] >= TUTORIAL_ACCURACY
