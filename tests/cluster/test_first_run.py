"""The first run on a fresh standalone cluster, as docs/cluster.md tells a user to start one:
the master and the workers started with docker/spark-node.sh, the job submitted at once with
docker/spark-submit.sh (no --py-files, no spark.cores.max, nothing waited for by hand).

It must take the persistent barrier stage over CURVE on that first run (the executors register
while the driver waits for them) and give local[2]'s model.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys

from ..support import REPO
from ..support.datasets import write_dataset
from ..support.fakes import learnable
from ..support.models import assert_same_model, read_params
from ..support.processes import LOOPBACK, Driver, clean_env
from .standalone import Cluster, spark_home

SYNC = ["layer_sizes=[784, 16, 10]", "mode=sync", "batch_size=32", "epochs=2", "workers=2"]
SUBMIT = REPO / "docker" / "spark-submit.sh"
CURVE = r"^transport: persistent barrier stage of 2 tasks, rounds over ZeroMQ \(CURVE-encrypted\) at tcp://"


def _sets() -> list[str]:
    return [arg for item in SYNC for arg in ("--set", item)]


def test_the_first_run_on_a_fresh_cluster_takes_the_barrier_stage(worker_python, tmp_path):
    data = write_dataset(tmp_path / "DATA", learnable(512, seed=0), learnable(128, seed=1), 2)
    train = [sys.executable, "-m", "dist_mnist.cli", "train", "--master", "local[2]", "--data", str(data)]
    local = subprocess.run(
        [*train, "--out", str(tmp_path / "local"), *_sets()],
        env=clean_env(SPARK_LOCAL_IP=LOOPBACK),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert local.returncode == 0, local.stderr[-3000:]

    cluster = Cluster(tmp_path / "cluster", secret=secrets.token_hex(24))
    try:
        cluster.start_master()
        for _ in range(2):
            cluster.start_worker(wait=False)  # not waited for: the user submits at once
        env = clean_env(
            SPARK_MASTER_URL=cluster.master_url,
            SPARK_AUTH_SECRET=cluster.secret,
            SPARK_HOME=str(spark_home()),
            SPARK_LOCAL_IP=LOOPBACK,
            PATH=f"{sys.executable.rsplit('/', 1)[0]}:/usr/bin:/bin",  # as with the venv active
        )
        # the executors' Python lacks dist_mnist (the package reaches them by itself); the driver's is this one
        argv = [str(SUBMIT), "--conf", f"spark.pyspark.python={worker_python}"]
        argv += ["--conf", f"spark.pyspark.driver.python={sys.executable}", "--conf", "spark.ui.enabled=false"]
        argv += [str(REPO / "jobs" / "train.py"), "--data", str(data), "--out", str(tmp_path / "cluster-run"), *_sets()]
        driver = Driver(argv, tmp_path / "driver.log", env, REPO)
        try:
            assert driver.wait(timeout=600) == 0, driver.tail()
        finally:
            driver.stop()
    finally:
        cluster.stop()
    out = driver.output
    assert re.search(CURVE, out, re.MULTILINE), out[-3000:]
    assert "one Spark job a round" not in out, out[-3000:]
    assert_same_model(read_params(tmp_path / "cluster-run"), read_params(tmp_path / "local"))
