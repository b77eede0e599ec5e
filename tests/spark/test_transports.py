"""The round transports: bit-identical models, the fallback when slots are short or encryption is
missing, lost and hung workers, what the channel drops."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal

import pytest
import zmq

from dist_mnist.config import TrainConfig
from dist_mnist.driver import train
from dist_mnist.files.model import load_model
from dist_mnist.spark import barrier
from dist_mnist.spark.barrier import BarrierTransport
from dist_mnist.spark.cluster import Cluster

from ..support.models import assert_identical

SYNC = TrainConfig(layer_sizes=(784, 32, 10), batch_size=64, epochs=2, mode="sync", workers=2)
AVERAGE = TrainConfig(
    layer_sizes=(784, 32, 10), batch_size=64, epochs=2, mode="average", averaging_frequency=2, workers=2
)


def _train(spark, config, data, run, **changes):
    lines: list[str] = []
    train(spark or None, dataclasses.replace(config, **changes), str(data), str(run), log=lines.append)
    return load_model(run)[0], lines


@pytest.mark.parametrize("config", [SYNC, AVERAGE], ids=["sync", "average"])
def test_every_transport_gives_the_same_model_bit_for_bit(spark, datasets, tmp_path, monkeypatch, config):
    models = {}
    for transport in ("jobs", "barrier", "barrier-tcp", "inprocess"):
        if transport == "barrier-tcp":  # the channel a cluster runs: CURVE over TCP
            monkeypatch.setattr(barrier, "channel_kind", lambda sc: "tcp")
        models[transport], lines = _train(
            spark, config, datasets[2], tmp_path / transport, transport=transport.removesuffix("-tcp")
        )
        monkeypatch.undo()
        line = [line for line in lines if line.startswith("transport:")]
        if transport == "barrier":
            assert line[0].startswith(
                "transport: persistent barrier stage of 2 tasks, rounds over ZeroMQ over a Unix "
                "socket, same user only (nothing crosses a network), at ipc:///"
            ), line
        if transport == "barrier-tcp":
            assert line[0].startswith(
                "transport: persistent barrier stage of 2 tasks, rounds over ZeroMQ "
                "(CURVE-encrypted) at tcp://127.0.0.1:"
            ), line
        if transport.startswith("barrier"):
            rounds = json.loads((tmp_path / transport / "metrics.json").read_text())["rounds"]
            assert (rounds["dropped_messages"], rounds["refused_connections"]) == ({}, {})
            assert not any(line.startswith("channel:") for line in lines), lines
    assert_identical(models["barrier"], models["jobs"])
    assert_identical(models["barrier-tcp"], models["jobs"])
    assert_identical(models["inprocess"], models["jobs"])


@pytest.mark.parametrize("config", [SYNC, AVERAGE], ids=["sync", "average"])
def test_reducing_along_a_chain_gives_the_same_model_bit_for_bit(spark, datasets, tmp_path, monkeypatch, config):
    flat, _ = _train(spark, config, datasets[2], tmp_path / "driver", transport="barrier")
    for kind in ("ipc", "tcp"):
        if kind == "tcp":  # the chain's links a cluster runs: CURVE, only the predecessor's key admitted
            monkeypatch.setattr(barrier, "channel_kind", lambda sc: "tcp")
        model, lines = _train(spark, config, datasets[2], tmp_path / kind, transport="barrier", reduce="chain")
        monkeypatch.undo()
        line = [line for line in lines if line.startswith("transport:")]
        assert line[0].startswith("transport: persistent barrier stage of 2 tasks") and line[0].endswith(
            "; the workers add their sums along a chain"
        ), line
        # one transport line: no relaunch, no fallback
        assert len(line) == 1 and not any(line.startswith("channel:") for line in lines), lines
        rounds = json.loads((tmp_path / kind / "metrics.json").read_text())["rounds"]
        assert (rounds["dropped_messages"], rounds["refused_connections"]) == ({}, {})
        assert_identical(model, flat)


def test_too_few_slots_fall_back_to_spark_jobs_with_one_line(spark, datasets, tmp_path):
    model, lines = _train(spark, SYNC, datasets[4], tmp_path / "auto", workers=3, max_rounds=6)
    assert [line for line in lines if line.startswith("transport:")] == [
        "transport: one Spark job a round, because 3 workers need 3 task slots at once, the application has 2"
    ]
    expected, _ = _train(
        None, SYNC, datasets[4], tmp_path / "inprocess", workers=3, max_rounds=6, transport="inprocess"
    )
    assert_identical(model, expected)


def test_asking_for_the_barrier_transport_without_the_slots_is_refused(spark, datasets, tmp_path):
    with pytest.raises(RuntimeError, match="transport 'barrier' cannot run: 3 workers need 3 task slots"):
        _train(spark, SYNC, datasets[2], tmp_path / "RUN", workers=3, transport="barrier")
    assert not (tmp_path / "RUN").exists()


def _without_curve(monkeypatch):
    """A cluster master (a TCP channel) with a libzmq that has no CURVE."""
    monkeypatch.setattr(barrier, "channel_kind", lambda sc: "tcp")
    monkeypatch.setattr(zmq, "has", lambda capability: capability != "curve")


NO_CURVE = "this libzmq has no CURVE encryption (zmq.has('curve') is False), and rounds never travel in clear over TCP"


def test_without_curve_a_cluster_falls_back_to_spark_jobs_never_to_clear_text(spark, datasets, tmp_path, monkeypatch):
    _without_curve(monkeypatch)
    model, lines = _train(spark, SYNC, datasets[2], tmp_path / "auto", max_rounds=6)
    assert [line for line in lines if line.startswith("transport:")] == [
        f"transport: one Spark job a round, because {NO_CURVE}"
    ]
    monkeypatch.undo()
    expected, _ = _train(None, SYNC, datasets[2], tmp_path / "inprocess", max_rounds=6, transport="inprocess")
    assert_identical(model, expected)


def test_without_curve_asking_for_the_barrier_transport_is_refused(spark, datasets, tmp_path, monkeypatch):
    _without_curve(monkeypatch)
    with pytest.raises(
        RuntimeError,
        match=r"transport 'barrier' cannot run: this libzmq has no CURVE encryption .*"
        r"\(help: --set transport=jobs, or a pyzmq whose libzmq has CURVE",
    ):
        _train(spark, SYNC, datasets[2], tmp_path / "RUN", transport="barrier")
    assert not (tmp_path / "RUN").exists()


class _Cluster(Cluster):
    """A session's master and settings, for the functions that only read them."""

    def __init__(self, master: str, **conf: str):
        self.connect, self.host_setting = False, ""
        self.settings = {"spark.master": master, **{k.replace("_", "."): v for k, v in conf.items()}}

    def conf(self, key: str, default: str = "") -> str:
        return self.settings.get(key, default)


def test_the_transport_line_says_how_rounds_are_protected(monkeypatch):
    for master in ("local", "local[2]", "local[*]"):
        assert barrier.channel_kind(_Cluster(master)) == "ipc"
    assert barrier.channel_kind(_Cluster("local-cluster[2,1,1024]")) == "tcp"  # executor JVMs of their own
    asked = _Cluster("spark://m:7077", spark_network_crypto_enabled="true", spark_ssl_enabled="false")
    assert barrier.channel_kind(asked) == "tcp"
    assert barrier.describe_channel(asked, "tcp://h:1") == (
        "(CURVE-encrypted; the cluster asks for encryption: spark.network.crypto.enabled) at tcp://h:1"
    )
    assert barrier.describe_channel(_Cluster("yarn"), "tcp://h:1") == "(CURVE-encrypted) at tcp://h:1"
    monkeypatch.setattr(zmq, "has", lambda capability: capability != "curve")
    assert barrier.barrier_unavailable(asked, 2) == (
        f"{NO_CURVE} (the cluster asks for encryption: spark.network.crypto.enabled)"
    )


def test_a_message_for_no_round_in_flight_is_dropped_counted_and_told(spark, datasets, tmp_path, monkeypatch):
    real, count = BarrierTransport.run_round, [0]

    def run_round(self, flat, spec):  # at round 3, a peer of an earlier generation answers
        count[0] += 1
        if count[0] == 3:
            ctx = zmq.Context()
            peer = ctx.socket(zmq.DEALER)
            peer.identity = b"0:1"
            peer.connect(self.address)
            peer.send_multipart(
                [
                    b"result",
                    json.dumps(
                        {"run": self.server.run, "generation": 0, "worker": 1, "round": self.server.round}
                    ).encode(),
                ]
            )
            peer.close(linger=1000)
            ctx.term()
        return real(self, flat, spec)

    monkeypatch.setattr(BarrierTransport, "run_round", run_round)
    model, lines = _train(spark, SYNC, datasets[2], tmp_path / "barrier", transport="barrier", max_rounds=6)
    assert [line for line in lines if line.startswith("channel:")] == [
        "channel: dropped 1 message(s) that did not answer the round in flight (1 an earlier generation)"
    ]
    rounds = json.loads((tmp_path / "barrier" / "metrics.json").read_text())["rounds"]
    assert rounds["dropped_messages"] == {"an earlier generation": 1}
    expected, _ = _train(spark, SYNC, datasets[2], tmp_path / "jobs", transport="jobs", max_rounds=6)
    assert_identical(model, expected)


def test_a_barrier_stage_that_cannot_start_leaves_no_socket_behind(spark, datasets, monkeypatch):
    from dist_mnist.data.splits import describe_split
    from dist_mnist.driver.prepare import make_plan
    from dist_mnist.transport import WorkerLost

    servers = []

    class Recorded(barrier.RoundServer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            servers.append(self)

    def failing_task(plan, endpoint, generation):
        def task(batches):
            raise OSError("this executor cannot start")

        return task

    monkeypatch.setattr(barrier, "RoundServer", Recorded)
    plan = make_plan(SYNC, describe_split(str(datasets[2] / "train")), describe_split(str(datasets[2] / "test")))
    with pytest.raises(WorkerLost, match="the barrier stage failed while starting"):
        BarrierTransport(Cluster(spark), plan, 30, make_task=failing_task)
    assert servers and servers[0].sock.closed and not os.path.exists(servers[0].dir)


def _sabotage_at_round(monkeypatch, at: int, sig: int, stopped: list[int], worker: int = 1):
    """Send `sig` to the worker's process just before the barrier transport's round `at` (first generation)."""
    real, count = BarrierTransport.run_round, [0]

    def run_round(self, flat, spec):
        count[0] += 1
        if count[0] == at and self.generation == 1:
            stopped.append(self.pids[worker])
            os.kill(self.pids[worker], sig)
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
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    assert stopped, "the sabotage never ran"
    lost = [line for line in lines if "redoing the round" in line]
    assert len(lost) == 1, lines
    if sig == signal.SIGSTOP:
        assert "worker(s) [1] timed out after 5 s in epoch 1 round 5" in lost[0]
    else:  # Spark fails the stage or restarts the task: either is seen within the round
        assert "in epoch 1 round 5" in lost[0] and ("worker 1 " in lost[0] or "barrier stage failed" in lost[0])
    assert any("barrier stage relaunched (generation 2)" in line for line in lines), lines
    assert_identical(model, expected)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSTOP], ids=["killed", "hung"])
def test_a_lost_link_of_the_chain_costs_one_round_and_not_the_model(spark, datasets, tmp_path, monkeypatch, sig):
    expected, _ = _train(spark, SYNC, datasets[2], tmp_path / "jobs", transport="jobs")
    stopped: list[int] = []
    _sabotage_at_round(monkeypatch, 5, sig, stopped, worker=0)  # worker 0 sends to worker 1, not to the driver
    try:
        model, lines = _train(
            spark, SYNC, datasets[2], tmp_path / "chain", transport="barrier", reduce="chain", round_timeout=5.0
        )
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
    assert stopped, "the sabotage never ran"
    lost = [line for line in lines if "redoing the round" in line]
    assert len(lost) == 1, lines
    if sig == signal.SIGSTOP:  # worker 1 waits for worker 0's sums: the driver's round times out
        assert "the chain's sum (worker 1's) timed out after 5 s in epoch 1 round 5" in lost[0]
    else:
        assert "in epoch 1 round 5" in lost[0] and ("worker 0 " in lost[0] or "barrier stage failed" in lost[0])
    assert any("barrier stage relaunched (generation 2)" in line for line in lines), lines
    assert_identical(model, expected)
