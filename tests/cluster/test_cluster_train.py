"""The trainer on the loopback cluster: equal to local[2] in sync mode, learns, survives a lost worker.

Data is the real MNIST, found as tests/conftest.py says; without it these tests are skipped.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dist_mnist.spark.packaging import build_zip

from ..support import REPO
from ..support.models import assert_identical, assert_run_written, assert_same_model, final_accuracy, read_params
from ..support.processes import Driver
from .standalone import driver_env, submit_argv

pytestmark = [pytest.mark.slow, pytest.mark.mnist]

TRAIN_JOB = REPO / "jobs" / "train.py"

SHORT_SYNC = ("epochs=1", "mode=sync", "max_rounds=40")
# 3 epochs x 59 rounds of 4 local steps: ~10 s on the persistent transport; a worker is killed in
# epoch 2, and the rest may run one Spark job a round (~0.5 s) when its slot does not come back.
LONG = ("epochs=3", "mode=average", "averaging_frequency=4", "log_every_rounds=10")
KILL_IN_EPOCH = 2
AVERAGE = ("epochs=2", "mode=average", "averaging_frequency=16")
MIN_ACCURACY = 0.90  # 2 epochs of the tutorial's net; 15 epochs reach about 0.97


@pytest.fixture(scope="module")
def mnist_data(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path) -> Path:
    """DATA with train/ and test/ Parquet in 2 partitions, ingested once for the module."""
    data = tmp_path_factory.mktemp("mnist") / "data"
    cmd = [
        sys.executable,
        "-m",
        "dist_mnist.cli",
        "ingest",
        "--source",
        str(mnist_dir),
        "--out",
        str(data),
        "--partitions",
        "2",
        "--seed",
        "123",
    ]
    result = subprocess.run(cmd, cwd=REPO, env=driver_env(), capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (data / "train").is_dir() and (data / "test").is_dir()
    return data


@pytest.fixture(scope="session")
def dist_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dist_mnist.zip for --py-files, built as `make dist` builds it."""
    return build_zip(tmp_path_factory.mktemp("dist") / "dist_mnist.zip")


def train_args(dist_zip: Path, data: Path, run: Path, settings: tuple[str, ...]) -> list[str]:
    """What follows spark-submit's options: the package, the job and its flags."""
    args = ["--py-files", str(dist_zip), str(TRAIN_JOB), "--data", str(data), "--out", str(run)]
    for setting in settings:
        args += ["--set", setting]
    return args


@pytest.fixture(scope="module")
def fault_free_model(worker_python, dist_zip, mnist_data, tmp_path_factory) -> dict[str, np.ndarray]:
    """The LONG model from local[2]: what a run that lost a worker must still produce, bit for bit."""
    root = tmp_path_factory.mktemp("fault-free")
    run = root / "run"
    argv = submit_argv("local[2]", worker_python, root) + train_args(dist_zip, mnist_data, run, LONG)
    driver = Driver(argv, root / "driver.log", env=driver_env(), cwd=REPO)
    try:
        assert driver.wait(timeout=900) == 0, driver.tail()
    finally:
        driver.stop()
    return read_params(run)


def run_on_cluster(cluster, driver: Driver, apps_before: set[str]) -> None:
    """Wait for a cluster run to succeed, and check that it really ran there, not in local mode."""
    assert driver.wait(timeout=900) == 0, driver.tail()
    assert cluster.app_ids() - apps_before, (
        "the master never saw the application: the job ignored "
        f"spark-submit's --master and ran locally\n{driver.tail(10)}"
    )


def test_sync_on_the_cluster_equals_local(
    cluster, cluster_submit, local_submit, start_driver, dist_zip, mnist_data, tmp_path
):
    cluster_run, local_run = tmp_path / "cluster-run", tmp_path / "local-run"
    apps = cluster.app_ids()
    on_cluster = start_driver([*cluster_submit(), *train_args(dist_zip, mnist_data, cluster_run, SHORT_SYNC)])
    run_on_cluster(cluster, on_cluster, apps)
    local = start_driver([*local_submit(), *train_args(dist_zip, mnist_data, local_run, SHORT_SYNC)])
    assert local.wait(timeout=900) == 0, local.tail()
    # rounds crossed the network encrypted on the cluster, and a Unix socket on local[2]
    on_cluster.wait_for_line(
        r"^transport: persistent barrier stage .* over ZeroMQ \(CURVE-encrypted[^)]*\) at tcp://", timeout=1
    )
    local.wait_for_line(r"^transport: persistent barrier stage .* over a Unix socket, same user only", timeout=1)
    for run in (cluster_run, local_run):
        assert_run_written(run)
    assert_same_model(read_params(cluster_run), read_params(local_run))


def test_average_mode_learns_on_the_cluster(cluster, cluster_submit, start_driver, dist_zip, mnist_data, tmp_path):
    run = tmp_path / "run"
    apps = cluster.app_ids()
    run_on_cluster(cluster, start_driver([*cluster_submit(), *train_args(dist_zip, mnist_data, run, AVERAGE)]), apps)
    assert_run_written(run)
    assert final_accuracy(run) >= MIN_ACCURACY


def _train_and_kill_a_worker(cluster, cluster_submit, start_driver, dist_zip, mnist_data, run, replace: bool):
    """Start LONG on the persistent transport, SIGKILL a worker that runs one of its tasks mid-run."""
    driver = start_driver([*cluster_submit(), *train_args(dist_zip, mnist_data, run, LONG)])
    driver.wait_for_line(r"transport: persistent barrier stage of 2 tasks", timeout=600)
    driver.wait_for_line(r"\bepoch (\d+)/\d+ round", timeout=600, accept=lambda m: int(m.group(1)) >= KILL_IN_EPOCH)
    victim = cluster.workers[0]
    assert cluster.worker_status(victim)["executors"], "the victim runs no executor: killing it proves nothing"
    assert driver.proc.poll() is None, "the run ended before the worker was killed; make LONG longer"
    cluster.kill_worker(victim)
    if replace:
        cluster.start_worker()
    cluster.wait_for_workers(len(cluster.workers), timeout=90)  # the master saw the loss (and the newcomer)
    return driver.wait(timeout=900), driver


def test_training_survives_a_killed_worker_that_is_replaced(
    cluster, cluster_submit, start_driver, dist_zip, mnist_data, fault_free_model, tmp_path
):
    run = tmp_path / "run"
    rc, driver = _train_and_kill_a_worker(
        cluster, cluster_submit, start_driver, dist_zip, mnist_data, run, replace=True
    )
    assert rc == 0, driver.tail()
    assert driver.wait_for_line(r"transport: .*redoing the round", timeout=1)
    assert_identical(read_params(run), fault_free_model)


def test_training_finishes_on_the_remaining_worker(
    cluster, cluster_submit, start_driver, dist_zip, mnist_data, fault_free_model, tmp_path
):
    run = tmp_path / "run"
    rc, driver = _train_and_kill_a_worker(
        cluster, cluster_submit, start_driver, dist_zip, mnist_data, run, replace=False
    )
    assert rc == 0, driver.tail()
    assert len(cluster.alive_workers()) == 1  # nothing came back: the survivor did all the work
    assert driver.wait_for_line(r"transport: falling back to one Spark job a round", timeout=1)
    assert_identical(read_params(run), fault_free_model)
