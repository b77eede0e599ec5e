"""Fit from any DataFrame: stage it as our Parquet layout with Spark's writer, train, clean up.

The executors' resident shards read our layout (dist_mnist.data.parquet), so `fit` first
writes the user's DataFrame in it, once, with Spark's own Parquet writer: `features`
(array<float>) from a vector or array column, or `image` (n_in bytes) from a binary one,
and `label` (int). Rows are put in a seeded pseudo-random order on the way (a hash of each
row's values), so shards are fair samples whatever order or partitioning the input had, and
the model does not depend on either. A bad row stops the write with an error naming the
column (Spark's `raise_error`), before any training. The staged data and the run
directory are temporary and removed afterwards, also on failure.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from dist_mnist.config import TrainConfig
from dist_mnist.features import FeatureKind
from dist_mnist.ml import scoring
from dist_mnist.spark import hadoopfs

WHERE = "MLPClassifier.fit"
DEFAULT_HIDDEN = 1000  # the tutorial's hidden layer, when `layers` is not set
INT_MAX = 2**31 - 1  # labels are staged as int
# without `layers`, n_classes = the largest label + 1 must be at most MAX_SPREAD x the distinct
# labels + MAX_GAP: room for classes absent from a sample, none for a stray huge label
MAX_SPREAD, MAX_GAP = 2, 10
GIVEN, STAGED = "__dist_mnist_given", "__dist_mnist_staged"  # staged_frame's inner columns
_NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double")


@dataclass
class FitResult:
    """What a fit returns: the parameters, model.json's and metrics.json's contents, timings."""

    params: dict
    model_meta: dict
    metrics: dict
    staging_seconds: float
    train_seconds: float


@dataclass(frozen=True)
class Columns:
    """The user's columns and how each is staged."""

    features: str
    label: str
    validation: str | None
    kind: FeatureKind  # IMAGE from binary bytes, FEATURES from a vector or array of numbers
    data_type: object  # the features column's Spark type, as given


def check_columns(schema, features: str, label: str, validation: str | None) -> Columns:
    """The columns' presence and types, from the schema alone; errors name the column."""
    from pyspark.sql.types import BooleanType

    names = schema.names
    for role, name in (("featuresCol", features), ("labelCol", label), ("validationIndicatorCol", validation)):
        if name is not None and name not in names:
            raise ValueError(f"{role} {name!r}: no such column; the DataFrame has {names}")
    # the same feature types as transform takes, staged as the column of their kind
    kind = scoring.feature_kind(schema[features].dataType, features, WHERE)
    l_type = schema[label].dataType.simpleString()
    if l_type not in _NUMERIC and not l_type.startswith("decimal"):
        raise ValueError(f"labelCol {label!r} has type {l_type}; expected a numeric column of class ids 0..C-1")
    if validation is not None and not isinstance(schema[validation].dataType, BooleanType):
        raise ValueError(
            f"validationIndicatorCol {validation!r} has type "
            f"{schema[validation].dataType.simpleString()}; expected boolean"
        )
    return Columns(features, label, validation, kind, schema[features].dataType)


def _features_expr(cols: Columns):
    """The staged features column (binary or array<float>) as a Spark expression."""
    values = scoring.input_expr(cols.features, cols.data_type)
    return values if cols.kind is FeatureKind.IMAGE else values.cast("array<float>")


def _width_expr(cols: Columns, staged):
    from pyspark.sql import functions as F

    return F.length(staged) if cols.kind is FeatureKind.IMAGE else F.size(staged)


def first_width(df, cols: Columns) -> int:
    """n_in from the first row with features (one small job)."""
    from pyspark.sql import functions as F

    staged = _features_expr(cols)
    row = df.where(F.col(cols.features).isNotNull()).select(_width_expr(cols, staged).alias("n")).first()
    if row is None:
        raise ValueError(f"featuresCol {cols.features!r}: the DataFrame has no rows with features")
    return int(row["n"])


def _fail(message: str, *values):
    """raise_error with `message` followed by the values (Columns), null shown as 'null'."""
    from pyspark.sql import functions as F

    return F.raise_error(F.concat(F.lit(message), *[F.coalesce(v.cast("string"), F.lit("null")) for v in values]))


def _nonfinite_error(cols: Columns, staged, given):
    """(condition, error) for a row whose staged (float32) features hold a null, a NaN or an
    infinity, naming the first such value's index and the row's label (a DataFrame has no row
    numbers); `given` is the user's column, for the value as it was."""
    from pyspark.sql import functions as F

    def bad(x):
        return x.isNull() | F.isnan(x) | x.isin(float("inf"), float("-inf"))

    index = F.array_position(F.transform(staged, bad), True).cast("int")  # 1-based
    value = F.element_at(scoring.input_expr(given, cols.data_type, "float64"), index)  # the value as given
    shown = (
        F.when(value.isNull(), F.lit("a null"))
        .when(F.isnan(value), F.lit("a NaN"))
        .when(value.isin(float("inf"), float("-inf")), value.cast("string"))
        .otherwise(F.concat(value.cast("string"), F.lit(" (beyond float32's range)")))
    )
    found = _fail(
        f"featuresCol {cols.features!r} has ",
        shown,
        F.lit(" at index "),
        index - 1,
        F.lit(" in a row with label "),
        F.col(cols.label),
        F.lit("; features must be finite numbers"),
    )
    return F.exists(staged, bad), found


def _checked_features(cols: Columns, n_in: int, n_classes: int | None, given, staged):
    """The staged features, or an error for a null row, a row of another width than n_in, or
    (FEATURES) a null or non-finite value."""
    from pyspark.sql import functions as F

    width = _width_expr(cols, staged)
    features = F.when(given.isNull(), _fail(f"featuresCol {cols.features!r} has a null row")).when(
        width != n_in,
        _fail(
            f"featuresCol {cols.features!r} has a row of ",
            width,
            F.lit(
                f" {cols.kind.unit}; expected {n_in} (the first row's length"
                f"{' and layers[0]' if n_classes else ''}): vectors of mixed length"
            ),
        ),
    )
    if cols.kind is FeatureKind.FEATURES:  # pixels (bytes) cannot be anything but 0..255
        features = features.when(*_nonfinite_error(cols, staged, given))
    return features.otherwise(staged)


def _checked_label(cols: Columns, n_classes: int | None):
    """The label as int, or an error for a null, a negative or fractional one, one too large for
    an int or (n_classes given) outside the classes."""
    from pyspark.sql import functions as F

    label = F.col(cols.label)
    whole = (label >= 0) & (label % 1 == 0)  # NaN and inf are not (and % cannot overflow, floor can)
    classes = f"0-{n_classes - 1}" if n_classes is not None else "0, 1, 2, ..."
    outside = _fail(
        f"labelCol {cols.label!r} has label ",
        label,
        F.lit(f", outside the classes {classes} (class ids must be whole numbers)"),
    )
    label_out = (
        F.when(label.isNull(), _fail(f"labelCol {cols.label!r} has a null label"))
        .when(~whole, outside)
        .when(
            label > INT_MAX,
            _fail(
                f"labelCol {cols.label!r} has label ",
                label,  # before the cast overflows
                F.lit(", too large for a class id (class ids are 0..C-1 for C classes)"),
            ),
        )
    )
    if n_classes is not None:
        label_out = label_out.when(label >= n_classes, outside)
    return label_out.otherwise(label.cast("int"))


def staged_frame(df, cols: Columns, n_in: int, n_classes: int | None, seed: int, partitions: int):
    """The rows in our layout, in a seeded random order; a bad row raises an error naming the column."""
    from pyspark.sql import functions as F

    # the features converted once, in a projection of their own: every check below reads that
    # column (an expression used several times in one projection is computed each time)
    inputs = [F.col(c) for c in dict.fromkeys([cols.label, *([cols.validation] if cols.validation else [])])]
    df = df.select(F.col(cols.features).alias(GIVEN), _features_expr(cols).alias(STAGED), *inputs)
    features = _checked_features(cols, n_in, n_classes, F.col(GIVEN), F.col(STAGED))
    out = [_checked_label(cols, n_classes).alias("label"), features.alias(cols.kind.column)]
    if cols.validation is not None:
        v = F.col(cols.validation)
        out.append(
            F.when(v.isNull(), _fail(f"validationIndicatorCol {cols.validation!r} has a null value"))
            .otherwise(v)
            .alias("_test")
        )
    checked = df.select(*out)
    # the order: a seeded hash of each row's values, so it depends on neither the input's
    # order nor its partitioning nor the features' type (equal rows are interchangeable)
    # (hash partitioning into `partitions`, then a sort within each: one shuffle, no sampling pass)
    key = F.xxhash64(F.lit(seed), *[F.col(c) for c in checked.columns]).alias("_order")
    order = [*(["_test"] if cols.validation else []), "_order"]
    return checked.select("*", key).repartition(partitions, "_order").sortWithinPartitions(*order).drop("_order")


def _spark_error(e: Exception) -> Exception:
    """A failed staging job as the one-line ValueError raise_error carried, when it did."""
    text = str(e)
    for line in text.splitlines():
        for role in ("featuresCol", "labelCol", "validationIndicatorCol"):
            at = line.find(f"{role} '")
            if at >= 0:
                message = line[at:].split(" SQLSTATE")[0].rstrip(". ")
                return ValueError(message.rstrip("\"'"))
    return e


def stage(df, cols: Columns, n_in: int, n_classes: int | None, seed: int, partitions: int, out: str) -> None:
    """Write the staged rows under `out`: out/train (and out/test where validation rows are flagged)."""
    # "error" (classic's "errorifexists"): a Connect client knows only that name
    writer = staged_frame(df, cols, n_in, n_classes, seed, partitions).write.mode("error")
    try:
        if cols.validation is None:
            writer.parquet(f"{out}/train")
            return
        writer.partitionBy("_test").parquet(f"{out}/all")
    except Exception as e:  # noqa: BLE001 - Py4J/Spark wrap the raise_error message
        raise _spark_error(e) from None
    for value, split in (("false", "train"), ("true", "test")):
        if hadoopfs.exists(df.sparkSession, f"{out}/all/_test={value}"):
            hadoopfs.rename(df.sparkSession, f"{out}/all/_test={value}", f"{out}/{split}")


def label_stats(spark, splits: list[str]) -> tuple[int, int]:
    """(the largest label, the number of distinct labels) of staged splits: one aggregation
    job, which reads only their label column."""
    from pyspark.sql import functions as F

    row = spark.read.parquet(*splits).agg(F.max("label"), F.countDistinct("label")).first()
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
    log=None,
    tracker=None,
) -> FitResult:
    """Stage `dataset`, train on it with `config` (its layer_sizes replaced), clean up; the result.

    layers: the full layer sizes [n_in, hidden..., n_out] (checked against the data), or None
    for [n_in, 1000, n_classes] with n_in from the features and n_classes = the largest label + 1.
    Works from a classic session and from a Spark Connect client alike (no JVM calls here).
    """
    from dist_mnist.driver import train
    from dist_mnist.spark.session import default_parallelism

    spark = dataset.sparkSession
    log = log or (lambda *_: None)
    cols = check_columns(dataset.schema, features_col, label_col, validation_col)
    if layers is not None and (len(layers) < 2 or any(int(s) < 1 for s in layers)):
        raise ValueError(f"layers must be at least two positive sizes [n_in, ..., n_classes], got {layers}")
    t0 = time.perf_counter()
    n_in = first_width(dataset, cols)
    if layers and int(layers[0]) != n_in:
        raise ValueError(
            f"featuresCol {features_col!r} has rows of {n_in} {cols.kind.unit} but layers[0] is {layers[0]}"
        )
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
