"""Which transport runs, decided by the type of what went wrong, never by its message (no JVM)."""

from __future__ import annotations

import pytest

from dist_mnist.spark import transport_choice
from dist_mnist.spark.cluster import Cluster
from dist_mnist.transport import BarrierUnreachable, WorkerLost


class FakeConf:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values

    def get(self, key: str, default=None):
        return self.values.get(key, default)


class FakeContext:
    def __init__(self, conf: FakeConf) -> None:
        self.conf = conf

    def getConf(self) -> FakeConf:
        return self.conf


class FakeSpark:
    """Just what Cluster reads of a classic session: its SparkContext's conf (a cluster master, so tcp)."""

    def __init__(self) -> None:
        self.sparkContext = FakeContext(FakeConf({"spark.master": "spark://127.0.0.1:7077"}))


class FakePlan:
    workers = 2

    class config:  # stands in for a TrainConfig
        transport = "auto"
        channel_host = ""
        slot_wait = 0.0


@pytest.mark.parametrize(
    "error, line",
    [
        (  # passed on as it is worded, whatever its words
            BarrierUnreachable("tcp://198.51.100.1:5 is out of the executors' reach"),
            "transport: one Spark job a round, because tcp://198.51.100.1:5 is out of the executors' reach",
        ),
        (
            WorkerLost("workers [1] did not connect"),
            "transport: one Spark job a round, because the barrier stage did not start (workers [1] did not connect)",
        ),
    ],
)
def test_a_barrier_that_cannot_start_falls_back_in_one_line_worded_by_its_type(monkeypatch, error, line):
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(transport_choice.Cluster, "free_slots", lambda self: 2)
    monkeypatch.setattr(transport_choice, "prepare_executors", lambda spark: None)
    monkeypatch.setattr(transport_choice, "barrier_unavailable", lambda cluster, workers: None)
    monkeypatch.setattr(transport_choice, "FailoverTransport", failing)
    monkeypatch.setattr(transport_choice, "job_transport", lambda cluster, plan: "jobs")
    lines: list[str] = []
    assert transport_choice.open_transport(FakeSpark(), FakePlan(), lines.append) == "jobs"
    assert lines == [line]


def registering(monkeypatch, counts: list[int], master: str = "spark://127.0.0.1:7077", **conf: str) -> Cluster:
    """A Cluster whose free slots are `counts`, one after another (the last one stays)."""
    spark = FakeSpark()
    spark.sparkContext.conf.values.update({"spark.master": master, **conf})
    seen = iter(counts)
    last = {"n": counts[0]}

    def free_slots(self):
        last["n"] = next(seen, last["n"])
        return last["n"]

    monkeypatch.setattr(Cluster, "free_slots", free_slots)
    monkeypatch.setattr("dist_mnist.spark.cluster.standalone_cores", lambda master: None)  # no UI to ask
    monkeypatch.setattr("dist_mnist.spark.cluster.time.sleep", lambda s: None)
    return Cluster(spark)


def test_the_choice_waits_for_executors_that_are_still_registering(monkeypatch):
    lines: list[str] = []
    cluster = registering(monkeypatch, [0, 0, 1, 2])
    assert cluster.wait_for_slots(2, 60.0, lines.append) == 2
    assert lines == ["waiting for executors: 0 of 2 task slots registered (up to 60 s; --set slot_wait=SECONDS)"]


@pytest.mark.parametrize(
    "master, conf",
    [
        ("local-cluster[1,1,1024]", {}),  # one executor of one core
        ("spark://127.0.0.1:7077", {"spark.cores.max": "1"}),
        ("spark://127.0.0.1:7077", {"spark.executor.instances": "1", "spark.executor.cores": "1"}),
        ("local[1]", {}),  # a local master's slots are all there at once
    ],
)
def test_no_wait_where_the_cluster_can_never_offer_the_slots(monkeypatch, master, conf):
    lines: list[str] = []
    cluster = registering(monkeypatch, [0, 2], master, **conf)
    assert cluster.wait_for_slots(2, 60.0, lines.append) == 0
    assert lines == []


def test_a_bounded_wait_that_ends_without_the_slots(monkeypatch):
    lines: list[str] = []
    cluster = registering(monkeypatch, [1])
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr("dist_mnist.spark.cluster.time.monotonic", lambda: next(clock))
    assert cluster.wait_for_slots(2, 30.0, lines.append) == 1
    assert len(lines) == 1
