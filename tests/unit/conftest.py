"""One BLAS thread for the unit tests: their matrices are tiny, and spinning OpenBLAS threads
on a busy machine make them ten times slower."""

import pytest

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # optional: the tests only run slower without it
    threadpool_limits = None


@pytest.fixture(scope="session", autouse=True)
def _one_blas_thread():
    if threadpool_limits is None:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture
def no_spark(monkeypatch):
    """Fail the test if a command tries to start Spark: bad input must be caught before."""
    from dist_mnist.cli import spark

    def refuse(*args, **kwargs):
        raise AssertionError("Spark was started")

    monkeypatch.setattr(spark, "context", refuse)
