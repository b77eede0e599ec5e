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

from dataclasses import dataclass

from dist_mnist.data.features import FeatureKind
from dist_mnist.ml import scoring
from dist_mnist.spark import hadoopfs

WHERE = "MLPClassifier.fit"
INT_MAX = 2**31 - 1  # labels are staged as int
GIVEN, STAGED = "__dist_mnist_given", "__dist_mnist_staged"  # staged_frame's inner columns
_NUMERIC = ("tinyint", "smallint", "int", "bigint", "float", "double")


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
