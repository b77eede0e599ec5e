"""Choosing a round transport, and recovering from a lost worker.

The persistent barrier transport is the default wherever it can run; when it cannot (too
few free task slots, dynamic allocation), the run says why in one line and uses one Spark
job a round. A worker lost mid-run costs at most the current round: the stage is relaunched
from the driver's state, or, when the slots are gone, the run falls back to Spark jobs.
"""

from __future__ import annotations

import time

import numpy as np

from dist_mnist.channel import NO_CURVE
from dist_mnist.rounds import Plan, RoundResult, RoundSpec
from dist_mnist.spark.barrier import START_SECONDS, BarrierTransport, barrier_unavailable
from dist_mnist.spark.cluster import Cluster
from dist_mnist.spark.jobs import FrameJobTransport, SparkJobTransport
from dist_mnist.transport import InProcessTransport, Transport, WorkerLost

MAX_RELAUNCHES = 3  # then one Spark job a round for the rest of the run
LOSS_GRACE = 1.0  # seconds


def open_transport(spark, plan: Plan, log) -> Transport:
    """The transport the config asks for: 'auto' (barrier if it can run), 'barrier', 'jobs', 'inprocess'."""
    cluster, choice = Cluster(spark, plan.config.transport_host), plan.config.transport
    if choice == "inprocess":
        return InProcessTransport(plan)
    if choice == "jobs":
        return job_transport(cluster, plan)
    why = barrier_unavailable(cluster, plan.workers)
    if why is None:
        try:
            return FailoverTransport(cluster, plan, log)
        except WorkerLost as e:
            why = (
                str(e) if str(e).startswith("the executors cannot reach") else f"the barrier stage did not start ({e})"
            )
    if choice == "barrier":
        hint = "a pyzmq whose libzmq has CURVE (its wheels do)" if why.startswith(NO_CURVE) else "free the slots"
        raise RuntimeError(f"transport 'barrier' cannot run: {why} (help: --set transport=jobs, or {hint})")
    log(f"transport: one Spark job a round, because {why}")
    return job_transport(cluster, plan)


def job_transport(cluster: Cluster, plan: Plan) -> Transport:
    """One Spark job a round: an RDD job with a broadcast (classic), a DataFrame job (Connect)."""
    if cluster.connect:
        return FrameJobTransport(cluster.spark, plan)
    return SparkJobTransport(cluster.spark.sparkContext, plan)


class FailoverTransport:
    """The barrier transport, relaunched after a lost worker, or replaced by Spark jobs.

    Not a `Closing`: its name is the current transport's, a read-only property, not a class's.
    """

    def __init__(self, cluster: Cluster, plan: Plan, log):
        self.cluster, self.plan, self.log = cluster, plan, log
        self.relaunches = 0
        self.barrier = BarrierTransport(cluster, plan, plan.config.round_timeout, plan.config.transport_port, log)
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
                return self.current.run_round(flat, spec)
            except WorkerLost as e:
                self.log(f"transport: {e}; redoing the round")
                self._recover()

    def _recover(self) -> None:
        time.sleep(LOSS_GRACE)  # let the cluster manager register a lost executor before counting slots
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
