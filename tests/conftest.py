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
