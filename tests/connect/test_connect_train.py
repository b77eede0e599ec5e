"""The trainer from a Spark Connect client: the same model as classic for the same W, over
either transport; a client the executors cannot reach falls back in one line."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from dist_mnist.config import TrainConfig
from dist_mnist.driver import train
from dist_mnist.files.model import load_model

from ..support.datasets import write_dataset
from ..support.fakes import learnable
from ..support.models import assert_identical
from .client import SYNC, classic_env

UNREACHABLE = "198.51.100.1"  # TEST-NET-2: no executor reaches this client there


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("cdata") / "DATA", learnable(512, seed=0), learnable(128, seed=1), 2)


def _train(spark, config, data, run, **changes):
    lines: list[str] = []
    train(spark, dataclasses.replace(config, **changes), str(data), str(run), log=lines.append)
    return load_model(run)[0], lines


def _classic(data, run, config: TrainConfig, transport: str):
    """The same run with a classic local[2] session, in a process of its own (see conftest)."""
    argv = [
        sys.executable,
        "-m",
        "dist_mnist.cli",
        "train",
        "--master",
        "local[2]",
        "--data",
        str(data),
        "--out",
        str(run),
    ]
    for key, value in {**dataclasses.asdict(config), "transport": transport}.items():
        argv += ["--set", f"{key}={json.dumps(value)}"]  # TOML values: "text", true, [1, 2], 0.5
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=classic_env(), check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_model(run)[0]


@pytest.mark.parametrize("transport", ["barrier", "jobs"])
def test_connect_and_classic_train_the_same_model(cspark, data, tmp_path, transport):
    model, lines = _train(cspark, SYNC, data, tmp_path / "connect", transport=transport)
    said = [line for line in lines if line.startswith("transport:")]
    if transport == "barrier":
        assert said and "CURVE-encrypted" in said[0], lines
    assert_identical(model, _classic(data, tmp_path / "classic", SYNC, transport))


def test_an_unreachable_client_falls_back_in_one_line_to_the_same_model(cspark, data, tmp_path):
    model, lines = _train(cspark, SYNC, data, tmp_path / "auto", channel_host=UNREACHABLE)
    said = [line for line in lines if line.startswith("transport:")]
    assert len(said) == 1 and said[0].startswith(
        f"transport: one Spark job a round, because the executors cannot reach tcp://{UNREACHABLE}:"
    ), lines
    expected, _ = _train(cspark, SYNC, data, tmp_path / "jobs", transport="jobs")
    assert_identical(model, expected)


def test_a_barrier_transport_that_cannot_be_reached_is_refused(cspark, data, tmp_path):
    with pytest.raises(
        RuntimeError, match=f"transport 'barrier' cannot run: the executors cannot reach tcp://{UNREACHABLE}"
    ):
        _train(cspark, SYNC, data, tmp_path / "RUN", transport="barrier", channel_host=UNREACHABLE)
    assert not (tmp_path / "RUN").exists()
