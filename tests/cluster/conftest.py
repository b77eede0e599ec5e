"""Fixtures for tests against a real standalone cluster on loopback (marker: cluster).

One master and two 1-core workers are booted once per session with
docker/spark-node.sh, the script the compose file runs. Executors use a
separate "worker Python" (tests/support/fixtures.py) that has numpy, pyarrow and
pyzmq but not dist_mnist, so a job only passes if the package reaches them.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ..support import REPO
from ..support.processes import Driver
from .standalone import Cluster, driver_env, submit_argv


@pytest.fixture(scope="session")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The session's cluster: master + 2 workers (1 core, 2g each), auth on with a random secret."""
    cluster = Cluster(tmp_path_factory.mktemp("cluster"), secret=secrets.token_hex(24))
    try:
        cluster.start(n_workers=2)
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def cluster(spark_cluster: Cluster) -> Cluster:
    """The session's cluster, with exactly 2 ALIVE workers again (a test may have killed some)."""
    spark_cluster.ensure_workers(2)
    return spark_cluster


@pytest.fixture
def start_driver(tmp_path: Path) -> Iterator[Callable[..., Driver]]:
    """Start spark-submit argv (with extra environment) in the background; all are stopped at teardown."""
    drivers: list[Driver] = []

    def start(argv: list[str], env: dict[str, str] | None = None) -> Driver:
        log = tmp_path / f"driver-{len(drivers) + 1}.log"
        driver = Driver(argv, log, env={**driver_env(), **(env or {})}, cwd=REPO)
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.stop()


@pytest.fixture
def cluster_submit(cluster: Cluster, worker_python: Path, tmp_path: Path) -> Callable[..., list[str]]:
    """argv prefix for spark-submit to the cluster; secret defaults to the cluster's, None omits auth."""

    def argv(secret: str | None = cluster.secret, conf: dict[str, str] | None = None) -> list[str]:
        local = tmp_path / "driver-local"
        local.mkdir(exist_ok=True)
        return submit_argv(cluster.master_url, worker_python, local, secret, conf)

    return argv


@pytest.fixture
def local_submit(worker_python: Path, tmp_path: Path) -> Callable[..., list[str]]:
    """argv prefix for spark-submit to local[2], with the same Python split as the cluster runs."""

    def argv(conf: dict[str, str] | None = None) -> list[str]:
        local = tmp_path / "driver-local"
        local.mkdir(exist_ok=True)
        return submit_argv("local[2]", worker_python, local, None, conf)

    return argv
