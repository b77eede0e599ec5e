"""MLPClassifier.fit's steps: check and stage the DataFrame (ml.staging), find the classes, train, clean up.

The staged data and the run directory are temporary and removed afterwards, also on failure.
The training itself is dist_mnist.driver.train, the same as `dist-mnist train`."""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dist_mnist.config import TrainConfig
from dist_mnist.driver.prepare import check_memory
from dist_mnist.hints import Log
from dist_mnist.ml.staging import WHERE, Columns, check_columns, first_width, stage
from dist_mnist.spark import hadoopfs

if TYPE_CHECKING:
    from dist_mnist.hints import SparkSession

DEFAULT_HIDDEN = 1000  # the tutorial's hidden layer, when `layers` is not set
# without `layers`, n_classes = the largest label + 1 must be at most MAX_SPREAD x the distinct
# labels + MAX_GAP: room for classes absent from a sample, none for a stray huge label
MAX_SPREAD, MAX_GAP = 2, 10


@dataclass
class FitResult:
    """What a fit returns: the parameters, model.json's and metrics.json's contents, timings."""

    params: dict
    model_meta: dict
    metrics: dict
    staging_seconds: float
    train_seconds: float


def label_stats(spark: SparkSession, splits: list[str]) -> tuple[int, int]:
    """(the largest label, the number of distinct labels) of staged splits: one aggregation
    job, which reads only their label column."""
    from pyspark.sql import functions as F

    row = spark.read.parquet(*splits).agg(F.max("label"), F.countDistinct("label")).first()
    assert row is not None  # an aggregate without grouping has one row
    return int(row[0]), int(row[1])


def classes_from_labels(label_col: str, top: int, distinct: int, n_in: int) -> int:
    """n_classes = the largest label + 1, refused when that is far more than the distinct labels
    (more than MAX_SPREAD x distinct + MAX_GAP): a stray huge label would otherwise grow the
    output layer (and every transform's output) without a word."""
    n_classes = top + 1
    if n_classes > MAX_SPREAD * distinct + MAX_GAP:
        raise ValueError(
            f"labelCol {label_col!r} has labels up to {top} but only {distinct} distinct values; class "
            f"ids must be 0..C-1 (set layers=[{n_in}, ..., {n_classes}] if {n_classes} classes are meant)"
        )
    return n_classes


def staging_root(temp_dir: str | None, default_fs: str | None) -> str:
    """Where staged data goes: tempDir if set; else /tmp on Hadoop's default filesystem (HDFS
    on a Hadoop cluster, so every executor reads it); else, where that is the local
    filesystem, the driver's temp dir (enough for local[*] and single-host clusters; a
    multi-host cluster without HDFS needs tempDir on shared storage)."""
    if temp_dir:
        return temp_dir.rstrip("/")
    if default_fs and not default_fs.startswith("file:"):
        return default_fs.rstrip("/") + "/tmp"
    return tempfile.gettempdir()


def fit_dataframe(
    dataset,
    config: TrainConfig,
    layers: list[int] | None,
    features_col: str,
    label_col: str,
    validation_col: str | None = None,
    temp_dir: str | None = None,
    log: Log | None = None,
    tracker=None,
) -> FitResult:
    """Stage `dataset`, train on it with `config` (its layer_sizes replaced), clean up; the result.

    layers: the full layer sizes [n_in, hidden..., n_out] (checked against the data), or None
    for [n_in, 1000, n_classes] with n_in from the features and n_classes = the largest label + 1.
    Works from a classic session and from a Spark Connect client alike (no JVM calls here).
    """
    from dist_mnist.driver import train
    from dist_mnist.spark.executors import prepare_executors
    from dist_mnist.spark.session import default_parallelism

    spark = dataset.sparkSession
    log = log or (lambda *_: None)
    prepare_executors(spark)  # before anything is staged: the package shipped, the executors' Python checked
    cols = check_columns(dataset.schema, features_col, label_col, validation_col)
    if layers is not None and (len(layers) < 2 or any(int(s) < 1 for s in layers)):
        raise ValueError(f"layers must be at least two positive sizes [n_in, ..., n_classes], got {layers}")
    t0 = time.perf_counter()
    n_in = first_width(dataset, cols)
    if layers and int(layers[0]) != n_in:
        raise ValueError(
            f"featuresCol {features_col!r} has rows of {n_in} {cols.kind.unit} but layers[0] is {layers[0]}"
        )
    if layers:  # before anything is staged: a network that cannot fit is one line naming `layers`
        check_memory(dataclasses.replace(config, layer_sizes=tuple(int(s) for s in layers)), "layers")
    check_workers(spark, config, dataset)
    base = staging_root(temp_dir and hadoopfs.qualified(spark, temp_dir), hadoopfs.default_fs(spark))
    staged = f"{base}/dist-mnist-staging-{uuid.uuid4().hex[:12]}"
    run_parent = Path(tempfile.mkdtemp(prefix="dist-mnist-fit-"))
    try:
        # as many staged partitions as workers: the order depends on W (as the model does), not the cluster
        config = config.resolved(default_parallelism(spark))
        sizes = stage_checked(dataset, cols, layers, n_in, config.seed, config.workers, staged)
        staging_seconds = time.perf_counter() - t0
        log(f"staged the DataFrame as {staged} in {staging_seconds:.1f}s; layers {sizes}")
        t1 = time.perf_counter()
        result = train(
            spark,
            dataclasses.replace(config, layer_sizes=tuple(sizes)),
            staged,
            str(run_parent / "run"),
            log=log,
            require_test=validation_col is not None,
            tracker=tracker,  # dist_mnist.tracking: told of the run, or None
        )
        return FitResult(result.params, result.model_meta, result.metrics, staging_seconds, time.perf_counter() - t1)
    finally:
        hadoopfs.delete(spark, staged)
        shutil.rmtree(run_parent, ignore_errors=True)


def check_workers(spark: SparkSession, config: TrainConfig, dataset) -> None:
    """ValueError naming `workers` when it asks for more workers than the DataFrame has rows (as the
    CLI refuses it), or, with transport 'barrier', than the cluster can ever run at once: before a
    job of that many tasks. (With 'auto', more workers than slots run as one Spark job a round.)"""
    workers = config.workers
    if not workers:
        return
    from dist_mnist.spark.cluster import Cluster

    cluster = Cluster(spark)
    most = cluster.free_slots() if cluster.all_local() else cluster.most_slots()  # a local master's are all there
    if config.transport == "barrier" and most is not None and workers > most:
        raise ValueError(f"{WHERE}: workers {workers} is more than the {most} tasks this cluster can run at once")
    rows = dataset.limit(workers).count()  # at most `workers` rows read: enough to know
    if workers > rows:
        raise ValueError(f"{WHERE}: workers {workers} is more than the {rows} rows of the DataFrame")


def stage_checked(
    dataset, cols: Columns, layers: list[int] | None, n_in: int, seed: int, partitions: int, staged: str
) -> list[int]:
    """Stage `dataset` as a dataset at `staged` (train, maybe test, metadata.json); the layer
    sizes to train, n_classes from `layers` or else from the staged labels."""
    spark = dataset.sparkSession
    stage(dataset, cols, n_in, int(layers[-1]) if layers else None, seed, partitions, staged)
    if not hadoopfs.exists(spark, f"{staged}/train"):
        raise ValueError(
            f"the DataFrame has no training rows"
            f"{f' (every row has {cols.validation!r} true)' if cols.validation else ''}"
        )
    if layers:
        n_classes = int(layers[-1])
    else:  # the validation rows' labels count too: the model must have their classes
        splits = [f"{staged}/{s}" for s in ("train", "test") if hadoopfs.exists(spark, f"{staged}/{s}")]
        n_classes = classes_from_labels(cols.label, *label_stats(spark, splits), n_in)
    if n_classes < 2:
        raise ValueError(f"labelCol {cols.label!r} holds a single class (0); a classifier needs at least 2")
    hadoopfs.write_bytes(spark, f"{staged}/metadata.json", json.dumps({"n_in": n_in, "n_classes": n_classes}).encode())
    return [int(s) for s in layers] if layers else [n_in, DEFAULT_HIDDEN, n_classes]
