"""The round transports: bit-identical models, the fallback when slots are short, lost and hung workers."""

from __future__ import annotations

import dataclasses
import os
import signal

import numpy as np
import pytest

from dist_mnist.artifacts import load_model
from dist_mnist.config import TrainConfig
from dist_mnist.spark.barrier import BarrierTransport
from dist_mnist.spark.trainer import train

pytestmark = pytest.mark.spark

SYNC = TrainConfig(layer_sizes=(784, 32, 10), batch_size=64, epochs=2, mode="sync", workers=2)
AVERAGE = TrainConfig(layer_sizes=(784, 32, 10), batch_size=64, epochs=2, mode="average", averaging_frequency=2,
                      workers=2)


def _train(spark, config, data, run, **changes):
    lines: list[str] = []
    train(spark.sparkContext if spark else None, dataclasses.replace(config, **changes), str(data), str(run),
          log=lines.append)
    return load_model(run)[0], lines


def assert_identical(a, b):
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("config", [SYNC, AVERAGE], ids=["sync", "average"])
def test_every_transport_gives_the_same_model_bit_for_bit(spark, datasets, tmp_path, config):
    models = {}
    for transport in ("jobs", "barrier", "inprocess"):
        models[transport], lines = _train(spark, config, datasets[2], tmp_path / transport, transport=transport)
        if transport == "barrier":
            assert any("persistent barrier stage of 2 tasks, rounds over ZeroMQ" in line for line in lines), lines
    assert_identical(models["barrier"], models["jobs"])
    assert_identical(models["inprocess"], models["jobs"])


def test_too_few_slots_fall_back_to_spark_jobs_with_one_line(spark, datasets, tmp_path):
    model, lines = _train(spark, SYNC, datasets[4], tmp_path / "auto", workers=3, max_rounds=6)
    assert [line for line in lines if line.startswith("transport:")] == [
        "transport: one Spark job a round, because 3 workers need 3 task slots at once, the application has 2"]
    expected, _ = _train(None, SYNC, datasets[4], tmp_path / "inprocess", workers=3, max_rounds=6,
                         transport="inprocess")
    assert_identical(model, expected)


def test_asking_for_the_barrier_transport_without_the_slots_is_refused(spark, datasets, tmp_path):
    with pytest.raises(RuntimeError, match="transport 'barrier' cannot run: 3 workers need 3 task slots"):
        _train(spark, SYNC, datasets[2], tmp_path / "RUN", workers=3, transport="barrier")
    assert not (tmp_path / "RUN").exists()


def _sabotage_at_round(monkeypatch, at: int, sig: int, stopped: list[int]):
    """Send `sig` to worker 1's process just before the barrier transport's round `at` (first generation)."""
    real, count = BarrierTransport.run_round, [0]

    def run_round(self, flat, spec):
        count[0] += 1
        if count[0] == at and self.generation == 1:
            stopped.append(self.pids[1])
            os.kill(self.pids[1], sig)
        return real(self, flat, spec)

    monkeypatch.setattr(BarrierTransport, "run_round", run_round)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_a_lost_or_hung_worker_costs_one_round_and_not_the_model(spark, datasets, tmp_path, monkeypatch, sig):
    expected, _ = _train(spark, SYNC, datasets[2], tmp_path / "jobs", transport="jobs")
    stopped: list[int] = []
    _sabotage_at_round(monkeypatch, 5, sig, stopped)
    try:
        model, lines = _train(spark, SYNC, datasets[2], tmp_path / "barrier", transport="barrier", round_timeout=5.0)
    finally:
        for pid in stopped:  # never leave a stopped process behind
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert stopped, "the sabotage never ran"
    lost = [line for line in lines if "redoing the round" in line]
    assert len(lost) == 1, lines
    if sig == signal.SIGSTOP:
        assert "worker(s) [1] timed out after 5 s in epoch 1 round 5" in lost[0]
    else:  # Spark fails the stage or restarts the task: either is seen within the round
        assert "in epoch 1 round 5" in lost[0] and ("worker 1 " in lost[0] or "barrier stage failed" in lost[0])
    assert any("barrier stage relaunched (generation 2)" in line for line in lines), lines
    assert_identical(model, expected)
