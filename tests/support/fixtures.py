"""The fixtures of several tiers (a pytest plugin: tests/conftest.py loads it).

mnist_dir and mnist_parquet: the real MNIST files and their Parquet ingest, once per session
(the tests using them are marked `mnist`); mlflow_store: a temporary MLflow store of each test's own;
worker_python and bare_python: interpreters for executors, one with the packages a task needs but
not dist_mnist, one with nothing (the standalone and local-cluster tiers).
"""

from __future__ import annotations

import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .mnist import find_mnist
from .processes import clean_env


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The directory with the four MNIST .gz files (tests using it are marked `mnist`)."""
    path, reason = find_mnist()
    if path is None:
        pytest.skip(reason)
    return path


@pytest.fixture(scope="session")
def mnist_parquet(tmp_path_factory, mnist_dir) -> Path:
    """DATA: the published files verified and ingested as `make train` does (2 parts a split, seed 123)."""
    from dist_mnist.data.ingest import ingest

    data = tmp_path_factory.mktemp("mnist") / "DATA"
    ingest(mnist_dir, data, partitions=2, seed=123)
    return data


@pytest.fixture(scope="session")
def _mlflow_template(tmp_path_factory) -> Path:
    """An empty MLflow SQLite store, made once: creating one runs MLflow's migrations (seconds)."""
    pytest.importorskip("mlflow")
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    root = tmp_path_factory.mktemp("mlflow-template")
    # the Default experiment's artifacts (runs started without an experiment) go here, not ./mlruns
    SqlAlchemyStore(f"sqlite:///{root / 'mlruns.db'}", (root / "mlartifacts").as_uri())
    return root / "mlruns.db"


@pytest.fixture
def mlflow_store(_mlflow_template, tmp_path, monkeypatch) -> str:
    """A temporary SQLite store of this test's own (a copy of the empty template) as
    MLFLOW_TRACKING_URI; the test fails if it leaves an MLflow run active."""
    import mlflow

    db = tmp_path / "store" / "mlruns.db"
    db.parent.mkdir()
    shutil.copyfile(_mlflow_template, db)
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    mlflow.set_tracking_uri(uri)
    yield uri
    left = mlflow.active_run()
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    assert left is None, f"the test left MLflow run {left.info.run_id} active"


# What executors need to run the trainer; linked from this interpreter's site-packages
# so both sides run the very same NumPy build: equal models need equal arithmetic.
WORKER_PACKAGES = ("numpy", "pyarrow", "pyzmq")


def _link_distribution(name: str, site_packages: Path) -> None:
    """Symlink an installed distribution's top-level files into another site-packages."""
    dist = importlib.metadata.distribution(name)
    tops = {Path(f).parts[0] for f in dist.files or [] if Path(f).parts[0] != ".."}  # ".." = bin/ scripts
    for top in tops:
        (site_packages / top).symlink_to(Path(dist.locate_file(top)))


def _venv(root: Path) -> Path:
    """A new venv without pip (offline and fast: nothing is installed); its python."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--clear", str(root)], check=True, env=clean_env(), timeout=120
    )
    return root / "bin" / "python"


@pytest.fixture(scope="session")
def bare_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python for executors with no packages at all: no numpy, no pyarrow, no pyzmq."""
    python = _venv(tmp_path_factory.mktemp("bare-venv"))
    found = subprocess.run(
        [
            str(python),
            "-c",
            "import importlib.util as u; print([m for m in ('numpy', 'pyarrow', 'zmq') if u.find_spec(m)])",
        ],
        check=True,
        capture_output=True,
        text=True,
        env=clean_env(),
    ).stdout.strip()
    assert found == "[]", f"the bare Python finds {found}"
    return python


@pytest.fixture(scope="session")
def worker_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Python for executors with WORKER_PACKAGES only: `import dist_mnist` fails there."""
    venv = tmp_path_factory.mktemp("worker-venv")
    python = _venv(venv)  # the packages are linked, not installed
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
        env=clean_env(),
    ).stdout.strip()
    for name in WORKER_PACKAGES:
        _link_distribution(name, Path(site))
    probe = (
        "import importlib.util, numpy, pyarrow, zmq; "
        "assert importlib.util.find_spec('dist_mnist') is None, 'dist_mnist leaked into the worker Python'"
    )
    subprocess.run([str(python), "-c", probe], check=True, env=clean_env(), cwd=venv, timeout=120)
    return python
