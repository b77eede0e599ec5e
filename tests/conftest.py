"""Hooks for the whole suite; the shared fixtures are in tests/support/fixtures.py (loaded here).

- a test's folder gives it its tier's marker (FOLDER_MARKERS): no test file writes those by hand;
- a test marked `mnist` skips before its fixtures start anything when MNIST cannot be had
  (tests/support/mnist.py says where it is looked for);
- tests/connect is collected only when the command line names it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import FOLDER_MARKERS, REPO
from .support.mnist import find_mnist

pytest_plugins = ["tests.support.fixtures"]

TESTS = REPO / "tests"


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its folder's marker."""
    for item in items:
        path = Path(item.path).resolve()
        folder = path.relative_to(TESTS).parts[0] if TESTS in path.parents else None
        if folder in FOLDER_MARKERS:
            item.add_marker(FOLDER_MARKERS[folder])


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test marked `mnist` before its fixtures start anything, when MNIST cannot be had."""
    if item.get_closest_marker("mnist") is not None and find_mnist()[0] is None:
        pytest.skip(find_mnist()[1])


CONNECT_TESTS = TESTS / "connect"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """tests/connect only when the command line names it: a process with a Spark Connect
    session cannot also hold a classic one (`make test` runs it in a second pytest)."""
    if collection_path != CONNECT_TESTS:
        return None
    named = [Path(str(a).split("::")[0]).resolve() for a in config.args]
    return not any(p == CONNECT_TESTS or CONNECT_TESTS in p.parents for p in named)
