"""Choosing a round transport, and recovering from a lost worker.

The persistent barrier transport is the default wherever it can run; when it cannot (too
few free task slots, dynamic allocation), the run says why in one line and uses one Spark
job a round. A worker lost mid-run costs at most the current round: the stage is relaunched
from the driver's state, or, when the slots are gone, the run falls back to Spark jobs.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from dist_mnist.hints import Log
from dist_mnist.rounds import Plan, RoundResult, RoundSpec
from dist_mnist.spark.barrier import START_SECONDS, BarrierTransport, barrier_unavailable, curve_missing
from dist_mnist.spark.cluster import Cluster
from dist_mnist.spark.executors import prepare_executors
from dist_mnist.spark.jobs import DataFrameJobTransport, RddJobTransport
from dist_mnist.transport import BarrierUnreachable, InProcessTransport, ServerLost, Transport, WorkerLost

if TYPE_CHECKING:
    from dist_mnist.hints import SparkSession

MAX_RELAUNCHES = 3  # then one Spark job a round for the rest of the run
LOSS_GRACE = 1.0  # seconds


def open_transport(spark: SparkSession, plan: Plan, log: Log) -> Transport:
    """The transport the config asks for: 'auto' (barrier if it can run), 'barrier', 'jobs', 'inprocess'."""
    cluster, choice = Cluster(spark, plan.config.channel_host), plan.config.transport
    if choice == "inprocess":
        return InProcessTransport(plan)
    prepare_executors(spark)  # once per application: the package shipped, the executors' Python checked
    if choice == "jobs":
        return job_transport(cluster, plan)
    if not cluster.dynamic_allocation():  # a fresh cluster's executors register in the first seconds
        cluster.wait_for_slots(plan.workers, plan.config.slot_wait, log)
    why = barrier_unavailable(cluster, plan.workers)
    if why is None:
        try:
            return FailoverTransport(cluster, plan, log)
        except BarrierUnreachable as e:
            why = str(e)
        except WorkerLost as e:
            why = f"the barrier stage did not start ({e})"
    if choice == "barrier":
        hint = "a pyzmq whose libzmq has CURVE (its wheels do)" if curve_missing(cluster) else "free the slots"
        raise RuntimeError(f"transport 'barrier' cannot run: {why} (help: --set transport=jobs, or {hint})")
    log(f"transport: one Spark job a round, because {why}")
    return job_transport(cluster, plan)


def job_transport(cluster: Cluster, plan: Plan) -> Transport:
    """One Spark job a round: an RDD job with a broadcast (classic), a DataFrame job (Connect)."""
    if cluster.connect:
        return DataFrameJobTransport(cluster.spark, plan, lambda: cluster.check_server(0.0))
    return RddJobTransport(cluster.spark.sparkContext, plan)


def watched(cluster: Cluster, plan: Plan, run_round, flat: np.ndarray, spec: RoundSpec) -> RoundResult:
    """run_round(flat, spec); a failure while a Connect session's server does not answer is ServerLost."""
    try:
        return run_round(flat, spec)
    except (ServerLost, WorkerLost):
        raise
    except Exception:
        if cluster.connect:
            cluster.check_server(0.0)
        raise


class FailoverTransport:
    """The barrier transport, relaunched after a lost worker, or replaced by Spark jobs.

    Not a `Closing`: its name is the current transport's, a read-only property, not a class's.
    """

    def __init__(self, cluster: Cluster, plan: Plan, log: Log):
        self.cluster, self.plan, self.log = cluster, plan, log
        self.relaunches = 0
        self.barrier = BarrierTransport(cluster, plan, plan.config.round_timeout, plan.config.channel_port, log)
        self.current: Transport = self.barrier
        chain = plan.config.reduce == "chain" and plan.workers > 1
        log(
            f"transport: persistent barrier stage of {plan.workers} tasks, rounds over ZeroMQ {self.barrier.channel}"
            + ("; the workers add their sums along a chain" if chain else "")
        )

    @property
    def name(self) -> str:
        return self.current.name

    def summary(self) -> dict:
        """The transport that ran last, and what the round channel dropped or refused over the run."""
        return {**self.barrier.summary(), "transport": self.current.name}

    def run_round(self, flat: np.ndarray, spec: RoundSpec) -> RoundResult:
        while True:
            try:
                return watched(self.cluster, self.plan, self.current.run_round, flat, spec)
            except WorkerLost as e:
                self.cluster.check_server(0.0)  # a stage lost with its server is not relaunched there
                self.log(f"transport: {e}; redoing the round")
                self._recover()

    def _recover(self) -> None:
        time.sleep(LOSS_GRACE)  # let the cluster manager register a lost executor before counting slots
        self.cluster.wait_for_slots(self.plan.workers, self.plan.config.slot_wait, self.log)  # its replacement
        why = barrier_unavailable(self.cluster, self.plan.workers)
        if why is None and self.relaunches < MAX_RELAUNCHES and isinstance(self.current, BarrierTransport):
            self.relaunches += 1
            try:
                self.current.launch(timeout=START_SECONDS)
                self.log(f"transport: barrier stage relaunched (generation {self.current.generation})")
                return
            except WorkerLost as e:
                why = f"the relaunched barrier stage did not start ({e})"
        why = why or f"the barrier stage was already relaunched {self.relaunches} times"
        self.current.close()
        self.log(f"transport: falling back to one Spark job a round, because {why}")
        self.current = job_transport(self.cluster, self.plan)

    def close(self) -> None:
        self.current.close()

    def __enter__(self) -> FailoverTransport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
