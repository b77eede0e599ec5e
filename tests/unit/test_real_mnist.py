"""Full MNIST without Spark (see tests/support/mnist.py): the published files verify and ingest,
and the tutorial's recipe alone reaches DL4J's accuracy. tests/spark/test_real_mnist.py trains it on Spark."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dist_mnist.data import mnist
from dist_mnist.data.ingest import read_metadata

from ..support.mnist import TUTORIAL_ACCURACY

pytestmark = [pytest.mark.slow, pytest.mark.mnist]


def test_ingest_verifies_the_published_files(mnist_parquet):
    meta = read_metadata(mnist_parquet)
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
    done = subprocess.run(
        [sys.executable, "-c", REFERENCE],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MNIST_DIR": str(mnist_dir)},
        timeout=1800,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(history) == 15
    print("reference:", [round(h["test_accuracy"], 4) for h in history], f"{history[-1]['wall_seconds']:.0f}s")
    assert history[-1]["test_accuracy"] >= TUTORIAL_ACCURACY
