"""One local[2] SparkSession for all Spark tests (UI off), and synthetic Parquet datasets
(written by tests/support/datasets.py in the project's own layout)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ..support.datasets import write_dataset
from ..support.fakes import learnable

N_TRAIN, N_TEST = 1024, 256


@pytest.fixture(scope="session")
def spark():
    """The shared local[2] session, built by the product's own get_session."""
    from dist_mnist.spark.session import get_session

    old = os.environ.get("PYSPARK_SUBMIT_ARGS")
    os.environ["PYSPARK_SUBMIT_ARGS"] = (
        "--conf spark.ui.enabled=false --conf spark.driver.memory=1g --conf spark.driver.host=127.0.0.1 pyspark-shell"
    )
    try:
        session = get_session("dist-mnist-tests", "local[2]")
    finally:  # only this JVM's launch sees it; subprocesses get their own
        if old is None:
            del os.environ["PYSPARK_SUBMIT_ARGS"]
        else:
            os.environ["PYSPARK_SUBMIT_ARGS"] = old
    yield session
    session.stop()


@pytest.fixture(scope="session")
def arrays():
    """{"train": (images, labels), "test": (images, labels)} of the synthetic dataset."""
    return {"train": learnable(N_TRAIN, seed=0), "test": learnable(N_TEST, seed=1)}


@pytest.fixture(scope="session")
def datasets(tmp_path_factory, arrays) -> dict[int, Path]:
    """The same rows, in the same global order, as P = 1, 2 and 4 part files."""
    root = tmp_path_factory.mktemp("data")
    return {p: write_dataset(root / f"P{p}", arrays["train"], arrays["test"], p) for p in (1, 2, 4)}


@pytest.fixture
def bad_data(tmp_path, arrays):
    """A copy of the P=2 dataset to break: returns its root."""
    return write_dataset(tmp_path / "DATA", arrays["train"], arrays["test"], 2)


@pytest.fixture
def quiet():
    """A log function for train() that keeps the lines."""
    lines: list[str] = []
    return lines.append
