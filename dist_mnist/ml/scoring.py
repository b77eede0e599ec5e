"""Model.transform's forward pass: the features column as Arrow arrays in, a struct of
prediction, probability and rawPrediction out, vectorised per Arrow batch on the executors.

Vectors are turned into array<float> on the JVM (`vector_to_array`, dense and sparse alike),
arrays of floats or doubles and binary rows (n_in uint8 pixels, scaled by 1/255 as in our
`image` layout) go as they are. The parameters arrive in a broadcast read once per Python
worker; the UDF's closure holds only that handle and a few strings.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import pyarrow as pa

from dist_mnist.data.parquet import features_of, images_of
from dist_mnist.nn.model import logits_of, softmax, to_inputs

WHERE = "MLPClassificationModel.transform"
# the UDF's struct fields, in order
FIELDS = ("prediction", "probability", "rawPrediction")


def feature_kind(data_type, column: str, where: str = WHERE) -> str:
    """'vector', 'array' or 'binary' for the features column's Spark type; ValueError names
    `where`, the column and what it found."""
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import ArrayType, BinaryType, DoubleType, FloatType

    if isinstance(data_type, VectorUDT):
        return "vector"
    if isinstance(data_type, ArrayType) and isinstance(data_type.elementType, (FloatType, DoubleType)):
        return "array"
    if isinstance(data_type, BinaryType):
        return "binary"
    raise ValueError(f"{where}: featuresCol {column!r} has type {data_type.simpleString()}; expected a vector "
                     f"(VectorUDT), array<float>, array<double> or binary (n_in bytes a row)")


def feature_values(column: str, kind: str):
    """The Spark expression the UDF is given: array<float> for vectors, else the column."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    return vector_to_array(F.col(column), "float32") if kind == "vector" else F.col(column)


def scores_of(params, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prediction float64 (n,), probability float32 (n, C), logits float32 (n, C)) of inputs
    X: uint8 pixels (n, n_in) or float features (n, n_in)."""
    logits = logits_of(params, to_inputs(X))
    probs = softmax(logits)
    return probs.argmax(axis=1).astype(np.float64), probs, logits


def make_scoring_udf(bc, column: str, kind: str, n_in: int):
    """The Arrow UDF (iterator of batches) scoring the features column `column` of `kind`."""
    from pyspark.sql.functions import arrow_udf

    where = f"{WHERE}, featuresCol {column!r}"

    def rows_of(col) -> np.ndarray:
        if kind == "binary":
            if col.null_count:
                raise ValueError(f"{where}: null row (expected {n_in} bytes)")
            return images_of(col, where, 0, n_in)
        return features_of(col, WHERE, 0, n_in, name=column)

    def as_list(m: np.ndarray) -> pa.Array:
        n, C = m.shape
        return pa.ListArray.from_arrays(pa.array(np.arange(0, (n + 1) * C, C, dtype=np.int32)), pa.array(m.ravel()))

    def run(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
        params = bc.value
        for col in batches:
            prediction, probability, logits = scores_of(params, rows_of(col))
            yield pa.StructArray.from_arrays([pa.array(prediction), as_list(probability), as_list(logits)],
                                             names=list(FIELDS))

    schema = ("struct<prediction: double, probability: array<float>, rawPrediction: array<float>>")
    return arrow_udf(run, schema)  # an iterator UDF, by its type hints
