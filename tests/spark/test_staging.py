"""fit's staging: any DataFrame to our Parquet layout with Spark's writer, then the trainer.

The model must not depend on how the features are typed (dense or sparse vectors, arrays),
the staging must leave nothing behind (also when a row is bad), and what cannot be trained
on is refused with the column named.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dist_mnist.config import TrainConfig
from dist_mnist.ml.fitting import fit_dataframe

from ..support.fakes import learnable

CONFIG = TrainConfig(batch_size=16, epochs=2, workers=2, averaging_frequency=4)
LAYERS = [784, 16, 10]


@pytest.fixture(scope="module")
def rows():
    x, y = learnable(160, seed=5)
    return x / 255.0, y


def _frame(spark, rows, kind, partitions=3):
    from pyspark.ml.linalg import Vectors

    x, y = rows
    if kind == "dense":
        data = [(Vectors.dense(v.tolist()), float(c)) for v, c in zip(x, y)]
    elif kind == "sparse":
        data = [(Vectors.sparse(784, np.flatnonzero(v).tolist(), v[v != 0].tolist()), float(c)) for v, c in zip(x, y)]
    else:
        data = [(v.tolist(), int(c)) for v, c in zip(x, y)]
    return spark.createDataFrame(data, ["features", "label"]).repartition(partitions)


def test_dense_sparse_and_array_features_give_the_same_model_whatever_the_partitioning(spark, rows, tmp_path):
    models = {}
    for kind, partitions in (("dense", 3), ("sparse", 1), ("array", 5)):
        result = fit_dataframe(
            _frame(spark, rows, kind, partitions), CONFIG, LAYERS, "features", "label", temp_dir=str(tmp_path)
        )
        models[kind] = result.params
        assert result.model_meta["feature_kind"] == "features" and result.model_meta["layer_sizes"] == LAYERS
        assert [e["epoch"] for e in result.metrics["epochs"]] == [1, 2] and result.metrics["final"] is None
    for kind in ("sparse", "array"):
        for key in models["dense"]:
            np.testing.assert_array_equal(models[kind][key], models["dense"][key], err_msg=f"{kind} {key}")
    assert list(tmp_path.iterdir()) == []  # the staged data is gone


def test_layers_default_to_the_data_and_a_validation_column_is_the_test_set(spark, rows, tmp_path):
    from pyspark.sql import functions as F

    df = _frame(spark, rows, "dense").withColumn("is_val", F.rand(1) < 0.25)
    n_val = df.where("is_val").count()
    result = fit_dataframe(df, CONFIG, None, "features", "label", "is_val", temp_dir=str(tmp_path))
    assert result.model_meta["layer_sizes"] == [784, 1000, 10]  # n_in from the vectors, classes from the labels
    assert result.metrics["final"]["examples"] == n_val
    assert all("test_accuracy" in e for e in result.metrics["epochs"])
    assert result.staging_seconds > 0 and result.train_seconds > 0


def test_binary_features_are_pixels(spark, rows, tmp_path):
    x, y = rows
    pixels = np.round(x * 255).astype(np.uint8)
    df = spark.createDataFrame([(bytes(v), int(c)) for v, c in zip(pixels, y)], ["image", "digit"])
    result = fit_dataframe(df, CONFIG, None, "image", "digit", temp_dir=str(tmp_path))
    assert result.model_meta["feature_kind"] == "image" and result.model_meta["layer_sizes"][0] == 784


@pytest.mark.parametrize(
    "change, layers, fragment",
    [
        (lambda df: df.withColumn("label", df.label * 0), None, "holds a single class (0)"),
        (lambda df: df, [100, 16, 10], "has rows of 784 values but layers[0] is 100"),
        (lambda df: df.limit(0), None, "has no rows with features"),
    ],
)
def test_what_cannot_be_trained_on_is_refused_and_nothing_is_left(spark, rows, tmp_path, change, layers, fragment):
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        fit_dataframe(change(_frame(spark, rows, "dense")), CONFIG, layers, "features", "label", temp_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_a_bad_row_stops_the_staging_before_training_and_nothing_is_left(spark, rows, tmp_path):
    from pyspark.sql import functions as F

    df = _frame(spark, rows, "dense").withColumn("label", F.when(F.rand(2) < 0.05, 10.0).otherwise(F.col("label")))
    with pytest.raises(ValueError, match=r"^labelCol 'label' has label 10.0, outside the classes 0-9"):
        fit_dataframe(df, dataclasses.replace(CONFIG, epochs=1), LAYERS, "features", "label", temp_dir=str(tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_staging_goes_to_temp_dir_else_the_default_filesystem_else_local_temp(spark):
    import tempfile

    from dist_mnist.ml.fitting import staging_root

    assert staging_root("hdfs://nn:8020/scratch/", "hdfs://nn:8020") == "hdfs://nn:8020/scratch"
    assert staging_root(None, "hdfs://nn:8020/") == "hdfs://nn:8020/tmp"
    assert staging_root(None, "file:///") == tempfile.gettempdir()
    assert staging_root(None, None) == tempfile.gettempdir()
    # this session's default filesystem is the local one
    assert spark.sparkContext._jsc.hadoopConfiguration().get("fs.defaultFS").startswith("file:")


# --- inputs that must not give silent garbage (issue 18) ---


@pytest.mark.parametrize(
    "kind, value, shown",
    [
        ("array", float("nan"), "a NaN"),
        ("array", float("-inf"), "-Infinity"),
        ("array", None, "a null"),  # a null inside the array: named here, not by a staged temp file
        ("array", 1e300, "1.0E300 (beyond float32's range)"),
        ("dense", float("inf"), "Infinity"),
    ],
)
def test_a_non_finite_or_null_feature_is_refused_before_any_file_is_written(spark, rows, tmp_path, kind, value, shown):
    x, y = rows
    if kind == "array":
        data = [(v.tolist(), int(c)) for v, c in zip(x, y)]
        data[37][0][300] = value
        df = spark.createDataFrame(data, ["features", "label"]).repartition(3)
    else:
        from pyspark.ml.linalg import Vectors

        data = [
            (Vectors.dense([value if (i, j) == (37, 300) else float(f) for j, f in enumerate(v)]), float(c))
            for i, (v, c) in enumerate(zip(x, y))
        ]
        df = spark.createDataFrame(data, ["features", "label"]).repartition(3)
    label = int(y[37]) if kind == "array" else float(y[37])
    with pytest.raises(ValueError) as info:
        fit_dataframe(df, dataclasses.replace(CONFIG, epochs=1), LAYERS, "features", "label", temp_dir=str(tmp_path))
    assert type(info.value) is ValueError and str(info.value) == (
        f"featuresCol 'features' has {shown} at index 300 in a row with label {label}; features must be finite numbers"
    )
    assert list(tmp_path.iterdir()) == []


def test_a_stray_huge_label_does_not_grow_the_output_layer(spark, rows, tmp_path):
    from pyspark.sql import functions as F

    df = _frame(spark, rows, "dense")
    df = df.withColumn("label", F.when(F.monotonically_increasing_id() == 0, 20000.0).otherwise(F.col("label")))
    with pytest.raises(ValueError) as info:
        fit_dataframe(df, CONFIG, None, "features", "label", temp_dir=str(tmp_path))
    assert str(info.value) == (
        "labelCol 'label' has labels up to 20000 but only 11 distinct values; class ids must be "
        "0..C-1 (set layers=[784, ..., 20001] if 20001 classes are meant)"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("layers", [None, LAYERS], ids=["layers-unset", "layers-set"])
@pytest.mark.parametrize("label, shown", [(1e10, "1.0E10"), (1e100, "1.0E100")])
def test_a_label_beyond_int_is_our_message_not_a_cast_overflow(spark, rows, tmp_path, label, shown, layers):
    from pyspark.sql import functions as F

    df = _frame(spark, rows, "dense")
    df = df.withColumn("label", F.when(F.monotonically_increasing_id() == 3, label).otherwise(F.col("label")))
    with pytest.raises(ValueError) as info:
        fit_dataframe(df, CONFIG, layers, "features", "label", temp_dir=str(tmp_path))
    assert str(info.value) == (
        f"labelCol 'label' has label {shown}, too large for a class id (class ids are 0..C-1 for C classes)"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_classes_count_the_validation_rows_labels_too(spark, rows, tmp_path):
    from pyspark.sql import functions as F

    first = F.monotonically_increasing_id() == 0
    df = (
        _frame(spark, rows, "dense", partitions=1)
        .withColumn("is_val", first | (F.rand(1) < 0.2))
        .withColumn("label", F.when(first, 12.0).otherwise(F.col("label")))
    )  # a class only a validation row has
    result = fit_dataframe(
        df, dataclasses.replace(CONFIG, epochs=1), None, "features", "label", "is_val", temp_dir=str(tmp_path)
    )
    assert result.model_meta["layer_sizes"] == [784, 1000, 13]
    assert result.metrics["final"]["examples"] == df.where("is_val").count()
