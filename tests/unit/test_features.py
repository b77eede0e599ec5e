"""FeatureKind: the one word for a model's input kind, from Arrow, Spark and model.json."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from dist_mnist.data.features import FeatureKind

IMAGE, FEATURES = FeatureKind.IMAGE, FeatureKind.FEATURES


def test_the_word_is_the_column_name_and_what_model_json_says():
    assert [(k.column, k.unit, str(k), f"{k}") for k in FeatureKind] == [
        ("image", "bytes", "image", "image"),
        ("features", "values", "features", "features"),
    ]
    assert json.dumps({"feature_kind": FEATURES}) == '{"feature_kind": "features"}'


@pytest.mark.parametrize(
    "arrow_type, kind",
    [
        (pa.binary(), IMAGE),
        (pa.large_binary(), IMAGE),
        (pa.list_(pa.float32()), FEATURES),
        (pa.list_(pa.float64()), FEATURES),
        (pa.large_list(pa.float32()), FEATURES),
        (pa.list_(pa.float32(), 3), FEATURES),  # fixed size
        (pa.list_(pa.int32()), None),
        (pa.string(), None),
        (pa.float32(), None),
    ],
)
def test_from_arrow(arrow_type, kind):
    assert FeatureKind.from_arrow(arrow_type) is kind


def test_check_arrow_names_the_column_and_what_it_takes():
    FEATURES.check_arrow(pa.list_(pa.float64()), "f.parquet")
    with pytest.raises(ValueError) as info:
        IMAGE.check_arrow(pa.string(), "f.parquet")
    assert str(info.value) == "f.parquet: column 'image' has type string, expected binary"
    with pytest.raises(ValueError) as info:
        FEATURES.check_arrow(pa.binary(), "f.parquet", "x")
    assert str(info.value) == "f.parquet: column 'x' has type binary, expected an array of float or double"


def test_from_spark():
    pytest.importorskip("pyspark")  # the types only: no JVM starts
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import ArrayType, BinaryType, DoubleType, FloatType, IntegerType, StringType

    kinds = [
        FeatureKind.from_spark(t)
        for t in (
            BinaryType(),
            VectorUDT(),
            ArrayType(FloatType()),
            ArrayType(DoubleType()),
            ArrayType(IntegerType()),
            StringType(),
        )
    ]
    assert kinds == [IMAGE, FEATURES, FEATURES, FEATURES, None, None]


@pytest.mark.parametrize(
    "meta, kind",
    [
        ({}, IMAGE),  # models from before feature_kind was written
        ({"feature_kind": "image"}, IMAGE),
        ({"feature_kind": "features"}, FEATURES),
        ({"feature_kind": "float"}, FEATURES),  # what model.json said for FEATURES before it had that word
    ],
)
def test_of_model_reads_every_word_model_json_ever_held(meta, kind):
    assert FeatureKind.of_model(meta, "RUN/model.json") is kind


@pytest.mark.parametrize("word", ["pixels", "FEATURES", 1, ["image"], None])
def test_of_model_refuses_anything_else_in_one_line_naming_the_file(word):
    with pytest.raises(ValueError) as info:
        FeatureKind.of_model({"feature_kind": word}, "RUN/model.json")
    assert str(info.value) == (
        f"RUN/model.json: 'feature_kind' must be one of ['image', 'features'] (or 'float', an older word for "
        f"'features'), got {word!r}"
    )


def test_the_module_imports_neither_pyspark_nor_pyarrow():
    import subprocess
    import sys

    code = "import sys, dist_mnist.data.features; print(sorted(m for m in ('pyspark', 'pyarrow') if m in sys.modules))"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"
    )
