"""Distributed evaluation: mergeable confusion counts computed on the executors."""

from __future__ import annotations

import uuid

import numpy as np

from dist_mnist.metrics import confusion_counts
from dist_mnist.nn.model import Params, layer_sizes_of, predict
from dist_mnist.shards import plan_shards
from dist_mnist.spark.shard_cache import drop_shards, get_shard
from dist_mnist.worker_errors import USER_ERROR_TYPES, WorkerError, raise_worker_error


def evaluate_split(sc, params: Params, split, workers: int = 0) -> np.ndarray:
    """Confusion counts [actual][predicted] of `params` on a Parquet split.

    The split is sharded as training shards it: W contiguous row ranges (W = workers, or
    Spark's defaultParallelism), each read on an executor; only the counts (n_classes^2
    integers a task) reach the driver. Bad data comes back as a WorkerError and is raised
    here, as the ValueError or FileNotFoundError it was on the executor.
    """
    shards = plan_shards(split.files, split.rows, min(workers or sc.defaultParallelism, split.n_rows))
    bc = sc.broadcast(params)
    n_in, *_, n_classes = layer_sizes_of(params)
    scope = f"eval{uuid.uuid4().hex[:12]}"  # this evaluation's shard files, removed below

    def count(shard):
        for s in shard:
            try:
                images, labels = get_shard(s.segments, n_classes, n_in, scope)
            except USER_ERROR_TYPES as e:
                yield WorkerError.of(e)
                return
            yield confusion_counts(labels, predict(bc.value, images), n_classes)

    try:
        counts = sc.parallelize(shards, len(shards)).mapPartitions(count).collect()
    finally:
        bc.destroy()
        drop_shards(scope)  # the driver's SparkFiles directory: every shard in local mode
    raise_worker_error(counts)
    return np.sum(counts, axis=0)


def evaluate_model(sc, run_dir: str, split_path: str, json_out: str | None = None) -> str:
    """Load RUN's model, evaluate it on a Parquet split, write the JSON, return the report."""
    from pathlib import Path

    from dist_mnist.artifacts import atomic_write_json, load_model, model_files
    from dist_mnist.metrics import scores, stats_text
    from dist_mnist.paths import refuse_overlap
    from dist_mnist.spark.dataset import describe_split

    params, _ = load_model(run_dir)
    name = Path(split_path.rstrip("/")).name or "split"
    json_out = json_out or Path(run_dir) / f"evaluation-{name}.json"
    refuse_overlap(json_out, "--json", {"--data": split_path, **model_files(run_dir)})
    counts = evaluate_split(sc, params, describe_split(split_path))
    atomic_write_json(json_out, {**scores(counts), "confusion": counts.tolist()})
    return stats_text(counts)
