"""Fixtures for the tests against the docker-compose mini-cluster (marker: compose).

The image is built once per session by docker/build-offline.sh (no container
registry: a debootstrapped Debian base and a wheelhouse); the cluster (a master
and two workers, host networking, ports chosen free) comes up once per session
and goes down with `down -v` at its end. Without docker, docker-compose or a
running engine these tests skip with the reason, except under CI=true: .ci/run
starts dockerd itself, so there a missing engine is a failure.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..support.mnist import SHARED_MNIST
from .compose import FIGURES, ComposeCluster, build_image, engine_problem


def _unavailable(reason: str) -> None:
    """Skip on a developer's machine; fail in CI, where the engine is started for these tests."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"the compose tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def compose_image() -> str:
    """The project image from the offline build, tagged as the compose file expects."""
    problem = engine_problem()
    if problem:
        _unavailable(problem)
    return build_image()


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The four MNIST .gz files, mounted read-only into the submit service."""
    source = os.environ.get("MNIST_DIR") or (str(SHARED_MNIST) if SHARED_MNIST.is_dir() else None)
    if not source:
        _unavailable("set MNIST_DIR to a directory with the four MNIST .gz IDX files")
    return Path(source).resolve()


@pytest.fixture(scope="session")
def compose_session(
    compose_image: str, mnist_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ComposeCluster]:
    """The session's compose project: master + 2 workers up and healthy, auth on with a random secret."""
    cluster = ComposeCluster(
        f"distmnist{secrets.token_hex(4)}", secrets.token_hex(24), mnist_dir, tmp_path_factory.mktemp("compose-logs")
    )
    try:
        FIGURES["cluster start (up -d until all 3 daemons healthy)"] = f"{cluster.up():.0f} s"
        yield cluster
    finally:
        cluster.down()  # again, if a test already did: down -v is idempotent


@pytest.fixture
def compose_cluster(compose_session: ComposeCluster) -> ComposeCluster:
    """The session's cluster with all daemons healthy again (a test may have killed a worker)."""
    if set(compose_session.health().values()) != {"healthy"}:
        compose_session.up()
    return compose_session


def pytest_terminal_summary(terminalreporter) -> None:
    """The compose stage's figures: image build, cluster start, models, and the stage's own time."""
    reports = [
        r
        for reports in terminalreporter.stats.values()
        for r in reports
        if getattr(r, "nodeid", "").startswith("tests/compose/") and hasattr(r, "duration")
    ]
    if not reports:
        return
    terminalreporter.section("compose mini-cluster figures")
    for what, value in FIGURES.items():
        terminalreporter.write_line(f"{what}: {value}")
    terminalreporter.write_line(f"compose stage (setup, tests, teardown): {sum(r.duration for r in reports):.0f} s")
