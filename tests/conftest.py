"""The real MNIST files for the tests marked `mnist`, found once per session, or a skip.

Where they come from, first that works: $MNIST_DIR, the shared copy beside the checkout
(../shared/data/mnist), else `dist-mnist download` (checksums verified) into $MNIST_DIR or
data/raw. Offline and with no copy, the tests that need MNIST skip, saying so; none errors.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
DOWNLOAD_DIR = REPO / "data" / "raw"  # where `make train` puts it too


@functools.lru_cache(maxsize=1)
def find_mnist() -> tuple[Path | None, str]:
    """(directory with the four verified .gz files, "") or (None, why there is none)."""
    from dist_mnist.data.download import download
    from dist_mnist.data.mnist import ALL_STEMS

    if os.environ.get("MNIST_DIR"):
        where = Path(os.environ["MNIST_DIR"])
    elif SHARED_MNIST.is_dir():
        where = SHARED_MNIST
    else:
        where = DOWNLOAD_DIR
    if all((where / f"{stem}.gz").is_file() for stem in ALL_STEMS):
        return where, ""
    try:
        download(where, timeout=10.0, log=lambda line: None)
    except (RuntimeError, ValueError, OSError) as e:
        return None, (f"needs MNIST: no copy in {where} and the download failed ({e}); "
                      f"set MNIST_DIR to a directory with the four MNIST .gz files")
    return where, ""


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked `mnist` before its fixtures start anything, when MNIST cannot be had."""
    if item.get_closest_marker("mnist") is not None and find_mnist()[0] is None:
        pytest.skip(find_mnist()[1])


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The directory with the four MNIST .gz files (tests using it are marked `mnist`)."""
    path, reason = find_mnist()
    if path is None:
        pytest.skip(reason)
    return path


CONNECT_TESTS = REPO / "tests" / "connect"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """tests/connect only when the command line names it: a process with a Spark Connect
    session cannot also hold a classic one (`make test` runs it in a second pytest)."""
    if collection_path != CONNECT_TESTS:
        return None
    named = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    return not any(p == CONNECT_TESTS or CONNECT_TESTS in p.parents for p in named)


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
    import shutil

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
