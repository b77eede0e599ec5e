"""The Spark-job transports: every round is one Spark job over W partitions, one per worker.

Always works, on any number of free slots, and Spark retries a lost task by itself; it is
the fallback of the persistent transport and the baseline of its benchmark (benchmarks/rounds.py
measures a round). A classic session runs an RDD job with the vector in a broadcast; a Spark
Connect session has neither, so it runs a DataFrame job (mapInArrow) with the vector in the
function's closure. Both call compute_round and combine in worker order: the same bits.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from dist_mnist.channel.messages import decode_result, encode_result
from dist_mnist.rounds import Plan, RoundResult, RoundSpec, combine_all, compute_round
from dist_mnist.spark.shard_cache import drop_shards, get_shard, shard_bytes
from dist_mnist.transport import Closing
from dist_mnist.worker_errors import USER_ERROR_TYPES, WorkerError, raise_worker_error

if TYPE_CHECKING:
    from dist_mnist.hints import SparkSession


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
            shard_bytes() if spec.evaluate else 0,
            result.confusion,
        )

    return run


class RddJobTransport(Closing):
    """One Spark job a round over W partitions, one per worker."""

    name = "jobs"

    def __init__(self, sc, plan: Plan):
        self.sc, self.plan = sc, plan
        self.rdd = sc.parallelize(range(plan.workers), plan.workers)  # element = the worker's index

    def run_round(self, flat: np.ndarray, spec: RoundSpec) -> RoundResult:
        bc = self.sc.broadcast(flat)
        # collect, then combine in worker order on the driver: the same sums, bit for bit, as
        # the other transports (a treeAggregate would add in an order that depends on W)
        results = self.rdd.mapPartitionsWithIndex(make_partition_fn(self.plan, bc, spec)).collect()
        bc.destroy()
        raise_worker_error(results)
        return combine_all(results)

    def close(self) -> None:
        if self.plan.scope:
            drop_shards(self.plan.scope)  # the driver's SparkFiles directory: every shard in local mode


RESULT_SCHEMA = "w int, meta string, data binary"  # a worker's result: JSON of its small fields, raw arrays
WHOLE = 1 << 62  # the arrays in one piece (no frame limit in a row)


def make_frame_fn(plan: Plan, flat: np.ndarray, spec: RoundSpec):
    """mapInArrow's function for partition w of a DataFrame round: the vector in the closure, one row out.

    A user error (bad data) comes back as that row's meta {"error", "type"}, unretried.
    """

    def run(batches):
        from pyspark import TaskContext

        for _ in batches:  # the input rows only say which worker this is
            pass
        w = TaskContext.get().partitionId()
        for row in make_partition_fn(plan, _Value(flat), spec)(w, None):
            if isinstance(row, WorkerError):
                meta, data = json.dumps({"error": row.message, "type": row.kind}).encode(), b""
            else:  # the channel's encoding: JSON of the small fields, then the raw arrays
                meta, *frames = encode_result(row, {}, WHOLE)
                data = b"".join(frames)
            yield pa.RecordBatch.from_pydict(
                {"w": [w], "meta": [meta.decode()], "data": [data]},
                schema=pa.schema([("w", pa.int32()), ("meta", pa.string()), ("data", pa.binary())]),
            )

    return run


class _Value:
    """A broadcast's stand-in: the value itself, shipped in the closure."""

    def __init__(self, value):
        self.value = value


class DataFrameJobTransport(Closing):
    """One DataFrame job a round (Spark Connect: no RDDs, no broadcast), one partition per worker."""

    name = "jobs"

    def __init__(self, spark: SparkSession, plan: Plan, check_server=lambda: None):
        self.spark, self.plan = spark, plan
        self.check_server = check_server  # raises ServerLost when the job failed with its server gone

    def run_round(self, flat: np.ndarray, spec: RoundSpec) -> RoundResult:
        W = self.plan.workers
        fn = make_frame_fn(self.plan, np.ascontiguousarray(flat, np.float32), spec)
        try:
            rows = self.spark.range(W, numPartitions=W).mapInArrow(fn, RESULT_SCHEMA).collect()
        except Exception:
            self.check_server()
            raise
        results: list = [None] * W
        for row in rows:
            meta = json.loads(row["meta"])
            if "error" in meta:
                results[row["w"]] = WorkerError(meta["type"], meta["error"])
                continue
            results[row["w"]] = decode_result(meta, [bytes(row["data"])])
        raise_worker_error(results)
        if any(r is None for r in results):
            raise RuntimeError(
                f"a DataFrame round returned the results of workers {sorted(r['w'] for r in rows)} of {W}"
            )
        return combine_all(results)

    def close(self) -> None:
        if self.plan.scope:
            drop_shards(self.plan.scope)
