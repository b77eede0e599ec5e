"""Fixtures for tests against a real standalone cluster on loopback (marker: cluster).

One master and two 1-core workers are booted once per session with
docker/spark-node.sh, the script the compose file runs. Executors use a
separate "worker Python" that has numpy and pyarrow but not dist_mnist, so a
job only passes if it ships the package itself (--py-files).
"""

from __future__ import annotations

import importlib.metadata
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .processes import Driver
from .standalone import REPO, Cluster, clean_env, driver_env, submit_argv

# What executors need to run the trainer; linked from this interpreter's site-packages
# so both sides run the very same NumPy build: equal models need equal arithmetic.
WORKER_PACKAGES = ("numpy", "pyarrow", "pyzmq")


def _link_distribution(name: str, site_packages: Path) -> None:
    """Symlink an installed distribution's top-level files into another site-packages."""
    dist = importlib.metadata.distribution(name)
    tops = {Path(f).parts[0] for f in dist.files or [] if Path(f).parts[0] != ".."}  # ".." = bin/ scripts
    for top in tops:
        (site_packages / top).symlink_to(Path(dist.locate_file(top)))


@pytest.fixture(scope="session")
def worker_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python for executors with WORKER_PACKAGES only: `import dist_mnist` fails there."""
    venv = tmp_path_factory.mktemp("worker-venv")
    # Offline and fast: no pip, no index; the packages are linked, not installed.
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--clear", str(venv)],
                   check=True, env=clean_env(), timeout=120)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True, env=clean_env()).stdout.strip()
    for name in WORKER_PACKAGES:
        _link_distribution(name, Path(site))
    probe = ("import importlib.util, numpy, pyarrow, zmq; "
             "assert importlib.util.find_spec('dist_mnist') is None, 'dist_mnist leaked into the worker Python'")
    subprocess.run([str(python), "-c", probe], check=True, env=clean_env(), cwd=venv, timeout=120)
    return python


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
