"""Distributed evaluation: mergeable confusion counts computed on the executors.

A classic session runs an RDD job with the parameters in a broadcast; a Spark Connect
session has neither, so it runs a DataFrame job (mapInArrow, one partition a shard) with the
parameters in the function's closure. Both count the same rows with the same forward pass:
the same counts.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np
import pyarrow as pa

from dist_mnist.data.shards import plan_shards
from dist_mnist.metrics import confusion_counts
from dist_mnist.nn.model import Params, layer_sizes_of, predict
from dist_mnist.scoring import Shipped
from dist_mnist.spark.session import default_parallelism, is_connect
from dist_mnist.spark.shard_cache import drop_shards, get_shard, release_shard
from dist_mnist.worker_errors import USER_ERROR_TYPES, WorkerError, raise_worker_error

if TYPE_CHECKING:
    from dist_mnist.hints import SparkSession

COUNTS_SCHEMA = "error string, kind string, counts binary"  # a shard's int64 counts, or its user error


def make_count_fn(bc, n_classes: int, n_in: int, scope: str, release: bool = False):
    """The function counting a partition's shards: confusion counts, or a WorkerError for bad
    data (the task succeeds: Spark neither logs a trace nor retries what cannot succeed).
    `release`: remove each shard's files once counted (Connect: the driver cannot reach them)."""

    def count(shard):
        for s in shard:
            try:
                images, labels = get_shard(s.segments, n_classes, n_in, scope)
            except USER_ERROR_TYPES as e:
                yield WorkerError.of(e)
                return
            yield confusion_counts(labels, predict(bc.value, images), n_classes)
            if release:
                release_shard(s.segments, n_classes, n_in, scope)

    return count


def evaluate_split(spark: SparkSession, params: Params, split, workers: int = 0) -> np.ndarray:
    """Confusion counts [actual][predicted] of `params` on a Parquet split.

    `spark`: a classic or a Spark Connect session. The split is sharded as
    training shards it: W contiguous row ranges (W = workers, or Spark's defaultParallelism),
    each read on an executor; only the counts (n_classes^2 integers a task) reach the driver.
    Bad data comes back as a WorkerError and is raised here, as the ValueError or
    FileNotFoundError it was on the executor.
    """
    if is_connect(spark):
        return _evaluate_frames(spark, params, split, workers)
    sc = spark.sparkContext
    shards = plan_shards(split.files, split.rows, min(workers or sc.defaultParallelism, split.n_rows))
    bc = sc.broadcast(params)
    n_in, *_, n_classes = layer_sizes_of(params)
    scope = f"eval{uuid.uuid4().hex[:12]}"  # this evaluation's shard files, removed below
    try:
        counts = sc.parallelize(shards, len(shards)).mapPartitions(make_count_fn(bc, n_classes, n_in, scope)).collect()
    finally:
        bc.destroy()
        drop_shards(scope)  # the driver's SparkFiles directory: every shard in local mode
    raise_worker_error(counts)
    return np.sum(counts, axis=0)


def _evaluate_frames(spark: SparkSession, params: Params, split, workers: int) -> np.ndarray:
    """evaluate_split from a Spark Connect client: one DataFrame job, a partition per shard."""
    shards = plan_shards(split.files, split.rows, min(workers or default_parallelism(spark), split.n_rows))
    n_in, *_, n_classes = layer_sizes_of(params)
    count = make_count_fn(Shipped(params), n_classes, n_in, f"eval{uuid.uuid4().hex[:12]}", release=True)
    schema = pa.schema([("error", pa.string()), ("kind", pa.string()), ("counts", pa.binary())])

    def run(batches):
        from pyspark import TaskContext

        for _ in batches:  # the input rows only say which shard this is
            pass
        for result in count([shards[TaskContext.get().partitionId()]]):
            if isinstance(result, WorkerError):
                row = {"error": [result.message], "kind": [result.kind], "counts": [b""]}
            else:
                row = {"error": [None], "kind": [None], "counts": [np.asarray(result, np.int64).tobytes()]}
            yield pa.RecordBatch.from_pydict(row, schema=schema)

    rows = spark.range(len(shards), numPartitions=len(shards)).mapInArrow(run, COUNTS_SCHEMA).collect()
    results = [
        WorkerError(r["kind"], r["error"])
        if r["error"] is not None
        else np.frombuffer(r["counts"], np.int64).reshape(n_classes, n_classes)
        for r in rows
    ]
    raise_worker_error(results)
    if len(results) != len(shards):
        raise RuntimeError(f"an evaluation job returned {len(results)} results for {len(shards)} shards")
    return np.sum(cast(list[np.ndarray], results), axis=0)  # no WorkerError left


def evaluate_model(spark: SparkSession, run_dir: str, split_path: str, json_out: str | None = None) -> str:
    """Load RUN's model, evaluate it on a Parquet split (`spark`: as evaluate_split takes),
    write the JSON, return the report."""
    from dist_mnist.data.splits import describe_split
    from dist_mnist.files.atomic import atomic_write_json
    from dist_mnist.files.model import load_model, model_files
    from dist_mnist.files.paths import refuse_overlap
    from dist_mnist.metrics import scores, stats_text
    from dist_mnist.spark.executors import prepare_executors

    params, _ = load_model(run_dir)
    out = json_out or evaluation_json(run_dir, split_path)
    refuse_overlap(out, "--json", {"--data": split_path, **model_files(run_dir)})
    prepare_executors(spark)
    counts = evaluate_split(spark, params, describe_split(split_path))
    atomic_write_json(out, {**scores(counts), "confusion": counts.tolist()})
    return stats_text(counts)


def evaluation_json(run_dir: str, split_path: str) -> str:
    """Where evaluate_model writes the scores when not told: RUN/evaluation-<split>.json."""
    return str(Path(run_dir) / f"evaluation-{Path(split_path.rstrip('/')).name or 'split'}.json")
