"""Spark Connect tests: one server process (local[2]) for the module session, a client session on it.

A process that has made a Spark Connect session cannot make a classic one afterwards, and
pyspark.ml decides per process whether it is remote; so these tests run in a pytest process of
their own (`make test` runs `pytest tests/connect` after the rest; tests/conftest.py keeps them
out of any run that does not name tests/connect).
"""

from __future__ import annotations

import pytest

from . import server


@pytest.fixture(scope="session")
def connect_server(tmp_path_factory):
    """A Spark Connect server on loopback (its own JVM, local[2]), stopped at the end."""
    pytest.importorskip("grpc", reason="Spark Connect needs pyspark's connect extra (pip install '.[connect]')")
    running = server.start(tmp_path_factory.mktemp("connect"))
    yield running
    running.stop()


@pytest.fixture(scope="session")
def cspark(connect_server):
    """A Spark Connect session on the test server, dist_mnist shipped as the CLI ships it."""
    from dist_mnist.spark.session import connect_session, ship_package

    session = connect_session(connect_server.url, "dist-mnist-tests")
    ship_package(session)
    yield session
    session.stop()
