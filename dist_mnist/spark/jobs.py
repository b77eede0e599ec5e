"""The Spark-job transport: every round is one job (broadcast, mapPartitionsWithIndex, collect).

Always works, on any number of free slots, and Spark retries a lost task by itself; it is
the fallback of the persistent transport and the baseline of its benchmark. A round costs
a Spark job: benchmarks/rounds.py measures it against the barrier stage's round.
"""

from __future__ import annotations

import time

import numpy as np

from dist_mnist.rounds import Plan, RoundResult, RoundSpec, combine_all, compute_round
from dist_mnist.spark.shard_cache import drop_shards, get_shard, resident_bytes
from dist_mnist.worker_errors import USER_ERROR_TYPES, WorkerError, raise_worker_error


def make_partition_fn(plan: Plan, bc, spec: RoundSpec):
    """The function partition w runs: worker w's round, on its shard cached in the executor.

    It yields one RoundResult, or a WorkerError for bad data: the task succeeds, so Spark
    neither logs a stack trace nor retries what cannot succeed.
    """

    def run(w: int, _):
        try:
            rows = get_shard(*plan.reader_args(plan.train[w]), scope=plan.scope)
            result = compute_round(
                plan, w, rows, lambda: get_shard(*plan.reader_args(plan.test[w]), scope=plan.scope), bc.value, spec
            )
        except USER_ERROR_TYPES as e:
            yield WorkerError.of(e)
            return
        yield RoundResult(
            result.sums,
            result.loss,
            result.n,
            result.seconds,
            resident_bytes() if spec.evaluate else 0,
            result.confusion,
        )

    return run


class SparkJobTransport:
    """One Spark job a round over W partitions, one per worker."""

    name = "jobs"

    def __init__(self, sc, plan: Plan):
        self.sc, self.plan = sc, plan
        self.rdd = sc.parallelize(range(plan.workers), plan.workers)  # element = the worker's index
        self.timings: dict[str, float] = {}

    def run_round(self, flat: np.ndarray, spec: RoundSpec) -> RoundResult:
        t0 = time.perf_counter()
        bc = self.sc.broadcast(flat)
        t1 = time.perf_counter()
        # collect, then combine in worker order on the driver: the same sums, bit for bit, as
        # the other transports (a treeAggregate would add in an order that depends on W)
        results = self.rdd.mapPartitionsWithIndex(make_partition_fn(self.plan, bc, spec)).collect()
        t2 = time.perf_counter()
        bc.destroy()
        raise_worker_error(results)
        self.timings = {"send": t1 - t0, "job": t2 - t1}
        return combine_all(results)

    def close(self) -> None:
        if self.plan.scope:
            drop_shards(self.plan.scope)  # the driver's SparkFiles directory: every shard in local mode
