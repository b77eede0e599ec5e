"""The one scoring path: a batch of model inputs in, prediction, probability and rawPrediction out.

`scores_of` is the forward pass of every scorer: Model.transform's Arrow UDF (here),
`dist-mnist predict` (dist_mnist.spark.predict) and the model's one-vector predict*.
`Scores` names its outputs as the output columns are named (xgboost.spark's `Pred`), and
`arrow_columns` / `output_fields` give them the types both outputs have: prediction double,
probability and rawPrediction array<float> (transform turns the arrays into Vectors).

Transform's input: a features column of either FeatureKind. How its Spark type reaches the
UDF is this module's own business (`input_expr`): vectors are turned into array<float> on the
JVM (dense and sparse alike), arrays of floats or doubles and binary rows (n_in uint8 pixels,
scaled by 1/255) go as they are. Under a classic session the parameters arrive in a broadcast
read once per Python worker, and the UDF's closure holds only that handle and a few strings;
a Spark Connect client has no broadcast, so the closure holds the parameters (`Shipped`).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from dist_mnist.data.features import FeatureKind
from dist_mnist.data.parquet import features_of, images_of, nonfinite_name
from dist_mnist.scoring import FIELDS, arrow_columns, joined, output_fields, scores_of

WHERE = "MLPClassificationModel.transform"
HANDLE_INVALID = ("error", "skip", "keep")  # transform's handleInvalid, as MLlib's VectorAssembler


# --- transform's input: a Spark column of either kind ---
def feature_kind(data_type, column: str, where: str = WHERE) -> FeatureKind:
    """The FeatureKind of a featuresCol's Spark type; ValueError names `where`, the column and
    what it found."""
    kind = FeatureKind.from_spark(data_type)
    if kind is None:
        raise ValueError(
            f"{where}: featuresCol {column!r} has type {data_type.simpleString()}; expected a vector "
            f"(VectorUDT), array<float>, array<double> or binary (n_in bytes a row)"
        )
    return kind


def input_expr(column, data_type, dtype: str = "float32"):
    """The column (a name or a Column) as the UDF takes it: a vector becomes an array of
    `dtype` on the JVM; arrays and binary stay as they are."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import functions as F

    col = F.col(column) if isinstance(column, str) else column
    return vector_to_array(col, dtype) if isinstance(data_type, VectorUDT) else col


def declared_width(field) -> int | None:
    """The vector size a vector column's metadata declares (VectorAssembler's ml_attr), or None."""
    from pyspark.ml.linalg import VectorUDT

    if not isinstance(field.dataType, VectorUDT):
        return None
    return field.metadata.get("ml_attr", {}).get("num_attrs")


def invalid_rows(
    col, kind: FeatureKind, n_in: int, column: str
) -> tuple[np.ndarray, np.ndarray | None, dict[int, str]]:
    """(rows (n, n_in), the invalid rows' mask or None, what is wrong with each invalid row) of
    one Arrow batch: a null row, or a null or non-finite value (named by its index; the row's
    position in a batch means nothing to a user). A row of the wrong length is a ValueError."""
    where = f"{WHERE}, featuresCol {column!r}"
    nulls = col.is_null().to_numpy(zero_copy_only=False) if col.null_count else None
    if nulls is not None:  # stand-ins of the right length, masked out below
        filler = bytes(n_in) if kind is FeatureKind.IMAGE else [0.0] * n_in
        col = pc.if_else(pa.array(nulls), pa.scalar(filler, col.type), col)
    if kind is FeatureKind.IMAGE:  # pixels are never non-finite: only a null row is invalid
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


def make_scoring_udf(bc, column: str, kind: FeatureKind, n_in: int, handle_invalid: str = "error"):
    """The Arrow UDF (iterator of batches) scoring the features column `column` of `kind`.

    It returns a struct of FIELDS and `error`: a row's one-line error, raised on the JVM by
    the caller (Spark's raise_error), so the user sees that line and not a Python traceback.
    Invalid rows (handle_invalid 'skip' or 'keep') come back as a null struct.
    """
    from pyspark.sql.functions import arrow_udf
    from pyspark.sql.types import StringType, StructField, StructType

    hint = "; features must be finite numbers (handleInvalid='skip' drops such rows, 'keep' scores them null)"
    names = [*FIELDS, "error"]

    def scored(col) -> pa.StructArray:
        n = len(col)
        try:
            X, bad, reasons = invalid_rows(col, kind, n_in, column)
        except ValueError as e:  # a row of the wrong length: an error whatever handle_invalid says
            nothing = arrow_columns(joined([], 1), None)
            return pa.StructArray.from_arrays([pa.nulls(n, a.type) for a in nothing] + [pa.array([str(e)] * n)], names)
        if bad is not None:
            X = np.where(bad[:, None], np.zeros((), X.dtype), X)  # a copy, only when a batch has bad rows
        errors = pa.nulls(n, pa.string())
        if bad is not None and handle_invalid == "error":
            errors = pa.array(
                [f"{WHERE}: featuresCol {column!r} has {reasons[r]}{hint}" if r in reasons else None for r in range(n)],
                pa.string(),
            )
        return pa.StructArray.from_arrays(
            [*arrow_columns(scores_of(bc.value, X), bad), errors],
            names=names,
            mask=None if handle_invalid == "error" or bad is None else pa.array(bad),
        )

    def run(batches: Iterator[pa.Array]) -> Iterator[pa.Array]:
        for col in batches:
            yield scored(col)

    schema = StructType([*output_fields(), StructField("error", StringType())])
    # an iterator UDF, by its type hints (pyspark's stubs leave a struct return type out of that overload)
    return arrow_udf(run, schema)  # type: ignore[call-overload]
