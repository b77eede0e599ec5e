"""The forward pass every scorer shares: a batch of inputs in, prediction, probability and rawPrediction out.

`scores_of` is the forward pass of MLPClassificationModel.transform (dist_mnist.ml.scoring),
`dist-mnist predict` (dist_mnist.spark.predict), the final evaluation and the ONNX export's
output names. `Scores` names its outputs as the output columns are named (xgboost.spark's
`Pred`); `arrow_columns` / `output_fields` give them the types both outputs have: prediction
double, probability and rawPrediction array<float>. No pyspark at import (output_fields imports
its types itself)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from dist_mnist.nn.model import logits_of, softmax, to_inputs


class Scores(NamedTuple):
    """A batch's scores, each field named as its output column (MLlib's classifier columns)."""

    prediction: np.ndarray  # float64 (n,): the most probable class
    probability: np.ndarray  # float32 (n, C): softmax of the logits
    rawPrediction: np.ndarray  # float32 (n, C): the logits


FIELDS = Scores._fields  # the output columns, in the order every scorer writes them


class Shipped:
    """A broadcast's stand-in under Spark Connect: the value itself, in the closure (`.value`)."""

    def __init__(self, value) -> None:
        self.value = value


def scores_of(params, X: np.ndarray) -> Scores:
    """The scores of inputs X: uint8 pixels (n, n_in) or float features (n, n_in)."""
    logits = logits_of(params, to_inputs(X))
    probs = softmax(logits)
    return Scores(probs.argmax(axis=1).astype(np.float64), probs, logits)


def joined(parts: list[Scores], n_classes: int) -> Scores:
    """The scores of consecutive batches as one; no parts gives zero rows of n_classes."""
    if not parts:
        empty = np.empty((0, n_classes), np.float32)
        return Scores(np.empty(0, np.float64), empty, empty)
    if len(parts) == 1:
        return parts[0]
    return Scores(*(np.concatenate(field) for field in zip(*parts)))


def _as_list(m: np.ndarray, mask) -> pa.Array:
    n, C = m.shape
    return pa.ListArray.from_arrays(
        pa.array(np.arange(0, (n + 1) * C, C, dtype=np.int32)), pa.array(m.ravel()), mask=mask
    )


def arrow_columns(scores: Scores, bad: np.ndarray | None = None) -> list[pa.Array]:
    """The scores as Arrow arrays in FIELDS order (float64, list<float>, list<float>); the rows
    where `bad` is True are null."""
    mask = None if bad is None else pa.array(bad)
    return [
        pa.array(scores.prediction, mask=bad),
        _as_list(scores.probability, mask),
        _as_list(scores.rawPrediction, mask),
    ]


def output_fields(nullable: bool = True) -> list:
    """The output columns as Spark StructFields: prediction double, probability and
    rawPrediction array<float>; `nullable` for the columns and the arrays' elements."""
    from pyspark.sql.types import ArrayType, DoubleType, FloatType, StructField

    types = {"prediction": DoubleType(), "probability": ArrayType(FloatType(), nullable)}
    types["rawPrediction"] = types["probability"]
    return [StructField(name, types[name], nullable) for name in FIELDS]
