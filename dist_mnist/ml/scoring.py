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
import pyarrow.compute as pc

from dist_mnist.data.parquet import features_of, images_of, nonfinite_name
from dist_mnist.nn.model import logits_of, softmax, to_inputs

WHERE = "MLPClassificationModel.transform"
HANDLE_INVALID = ("error", "skip", "keep")  # transform's handleInvalid, as MLlib's VectorAssembler
# the output fields of the UDF's struct, in order (then `error`)
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
    raise ValueError(
        f"{where}: featuresCol {column!r} has type {data_type.simpleString()}; expected a vector "
        f"(VectorUDT), array<float>, array<double> or binary (n_in bytes a row)"
    )


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


def invalid_rows(col, kind: str, n_in: int, column: str) -> tuple[np.ndarray, np.ndarray | None, dict[int, str]]:
    """(rows (n, n_in), the invalid rows' mask or None, what is wrong with each invalid row) of
    one Arrow batch: a null row, or a null or non-finite value (named by its index; the row's
    position in a batch means nothing to a user). A row of the wrong length is a ValueError."""
    where = f"{WHERE}, featuresCol {column!r}"
    nulls = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
    if nulls is not None:  # stand-ins of the right length, masked out below
        filler = bytes(n_in) if kind == "binary" else [0.0] * n_in
        col = pc.if_else(pa.array(nulls), pa.scalar(filler, col.type), col)
    if kind == "binary":  # pixels are never non-finite: only a null row is invalid
        reasons = {} if nulls is None else {int(r): "a null row" for r in np.flatnonzero(nulls)}
        return images_of(col, where, 0, n_in), nulls, reasons
    X = features_of(col, where, 0, n_in, name=column, strict=False)  # a null value reads as NaN
    finite = np.isfinite(X).all(axis=1)
    bad = ~finite if nulls is None else (~finite | nulls)
    if not bad.any():
        return X, None, {}
    reasons = {}
    for r in np.flatnonzero(bad):
        if nulls is not None and nulls[r]:
            reasons[int(r)] = "a null row"
            continue
        j = int(np.flatnonzero(~np.isfinite(X[r]))[0])
        is_null = col[int(r)].values[j].as_py() is None
        reasons[int(r)] = f"{'a null' if is_null else nonfinite_name(X[r, j])} at index {j} in a row"
    return X, bad, reasons


def make_scoring_udf(bc, column: str, kind: str, n_in: int, handle_invalid: str = "error"):
    """The Arrow UDF (iterator of batches) scoring the features column `column` of `kind`.

    It returns a struct of FIELDS and `error`: a row's one-line error, raised on the JVM by
    the caller (Spark's raise_error), so the user sees that line and not a Python traceback.
    Invalid rows (handle_invalid 'skip' or 'keep') come back as a null struct.
    """
    from pyspark.sql.functions import arrow_udf

    hint = "; features must be finite numbers (handleInvalid='skip' drops such rows, 'keep' scores them null)"

    def as_list(m: np.ndarray, mask) -> pa.Array:
        n, C = m.shape
        return pa.ListArray.from_arrays(
            pa.array(np.arange(0, (n + 1) * C, C, dtype=np.int32)), pa.array(m.ravel()), mask=mask
        )

    def scored(col) -> pa.StructArray:
        try:
            X, bad, reasons = invalid_rows(col, kind, n_in, column)
        except ValueError as e:  # a row of the wrong length: an error whatever handle_invalid says
            return pa.StructArray.from_arrays(
                [
                    pa.nulls(len(col), pa.float64()),
                    pa.nulls(len(col), pa.list_(pa.float32())),
                    pa.nulls(len(col), pa.list_(pa.float32())),
                    pa.array([str(e)] * len(col)),
                ],
                names=[*FIELDS, "error"],
            )
        if bad is not None:
            X = np.where(bad[:, None], np.zeros((), X.dtype), X)  # a copy, only when a batch has bad rows
        prediction, probability, logits = scores_of(bc.value, X)
        mask = None if bad is None else pa.array(bad)
        errors = pa.nulls(len(col), pa.string())
        if bad is not None and handle_invalid == "error":
            errors = pa.array(
                [
                    f"{WHERE}: featuresCol {column!r} has {reasons[r]}{hint}" if r in reasons else None
                    for r in range(len(col))
                ],
                pa.string(),
            )
        return pa.StructArray.from_arrays(
            [pa.array(prediction, mask=bad), as_list(probability, mask), as_list(logits, mask), errors],
            names=[*FIELDS, "error"],
            mask=None if handle_invalid == "error" else mask,
        )

    def run(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
        for col in batches:
            yield scored(col)

    schema = "struct<prediction: double, probability: array<float>, rawPrediction: array<float>, error: string>"
    return arrow_udf(run, schema)  # an iterator UDF, by its type hints
