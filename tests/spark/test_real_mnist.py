"""Full MNIST (see tests/conftest.py): the tutorial's recipe reaches DL4J's accuracy, alone and on Spark."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dist_mnist.data import mnist
from dist_mnist.data.ingest import ingest

from .conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.mnist]

TUTORIAL_ACCURACY = 0.971  # DL4J MLPMnistSingleLayerExample's reported test accuracy, about 0.971


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def mnist_data(tmp_path_factory, mnist_dir):
    """The published files, verified and ingested to Parquet (2 parts a split)."""
    data = tmp_path_factory.mktemp("mnist") / "DATA"
    meta = ingest(mnist_dir, data, partitions=2)
    return data, meta


def test_ingest_verifies_the_published_files(mnist_data):
    _, meta = mnist_data
    assert meta["splits"]["train"] == {"rows": 60000, "rows_per_part": [30000, 30000]}
    assert meta["splits"]["test"] == {"rows": 10000, "rows_per_part": [5000, 5000]}
    assert meta["sha256_uncompressed"] == mnist.SHA256_UNCOMPRESSED


REFERENCE = """
import json, os
from dist_mnist.config import TrainConfig
from dist_mnist.data import mnist
from dist_mnist.reference import train_reference
train_images, train_labels, _ = mnist.load_split(os.environ["MNIST_DIR"], "train")
test_images, test_labels, _ = mnist.load_split(os.environ["MNIST_DIR"], "test")
_, history = train_reference(TrainConfig(), train_images, train_labels, test=(test_images, test_labels))
print(json.dumps(history))
"""


def test_reference_reaches_the_tutorial_accuracy(tmp_path, mnist_dir):
    # one BLAS thread: multi-threaded OpenBLAS is much slower on these thin matrices
    done = subprocess.run([sys.executable, "-c", REFERENCE], capture_output=True, text=True, cwd=tmp_path,
                          env=_env(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MNIST_DIR=str(mnist_dir)),
                          timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(history) == 15
    print("reference:", [round(h["test_accuracy"], 4) for h in history], f"{history[-1]['wall_seconds']:.0f}s")
    assert history[-1]["test_accuracy"] >= TUTORIAL_ACCURACY


@pytest.mark.spark
def test_spark_trainer_reaches_the_tutorial_accuracy(mnist_data, tmp_path):
    """The CI accuracy run: spark-submit, default config, local[2]."""
    data, _ = mnist_data
    run = tmp_path / "RUN"
    done = subprocess.run(["spark-submit", "--master", "local[2]", "--conf", "spark.ui.enabled=false",
                           str(REPO / "jobs" / "train.py"), "--data", str(data), "--out", str(run)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=3600,
                          env=_env(SPARK_CONF_DIR=str(REPO / "conf")))
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    print("spark:", [round(h.get("test_accuracy", 0), 4) for h in metrics["epochs"]],
          f"{metrics['epochs'][-1]['elapsed_seconds']:.0f}s")
    assert metrics["final"]["accuracy"] >= TUTORIAL_ACCURACY
    assert "Confusion Matrix" in done.stdout
    assert not any(line.startswith("Examples labeled as") for line in done.stdout.splitlines())
    assert f"{run}/evaluation.txt" in done.stdout  # where the full stats() text is


@pytest.mark.spark
def test_four_workers_on_a_seven_file_ingest_reach_the_tutorial_accuracy(mnist_dir, tmp_path):
    """Workers are a setting, not a file count: W=4 over 7 part files, default config, local[2].

    4 workers need 4 slots at once: on local[2] the run falls back to one Spark job a round
    (and says so); the model is the one any transport gives.
    """
    data = tmp_path / "DATA"
    ingest(mnist_dir, data, partitions=7)
    run = tmp_path / "RUN"
    done = subprocess.run(["spark-submit", "--master", "local[2]", "--conf", "spark.ui.enabled=false",
                           str(REPO / "jobs" / "train.py"), "--data", str(data), "--out", str(run),
                           "--set", "workers=4"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=3600,
                          env=_env(SPARK_CONF_DIR=str(REPO / "conf")))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "transport: one Spark job a round, because 4 workers need 4 task slots" in done.stdout
    metrics = json.loads((run / "metrics.json").read_text())
    meta = json.loads((run / "model.json").read_text())
    assert meta["config"]["workers"] == 4 and meta["local_learning_rate"] == pytest.approx(0.012)
    print("W=4:", [round(h.get("test_accuracy", 0), 4) for h in metrics["epochs"]])
    assert metrics["final"]["accuracy"] >= TUTORIAL_ACCURACY
