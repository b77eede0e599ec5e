"""MLPClassificationModel: a trained dist-mnist MLP as a pyspark.ml Model.

`transform` appends MLlib's classifier columns (prediction double, probability and
rawPrediction dense Vectors), so MulticlassClassificationEvaluator, Pipeline and
PipelineModel work with it unchanged. The forward pass runs on the executors
(dist_mnist.ml.scoring); `predict` and `predictProbability` score one vector with NumPy.
Rows whose features are null, hold a null or are not finite fail transform by default;
handleInvalid='skip' drops them and 'keep' gives them null outputs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from pyspark.ml import Model
from pyspark.ml.linalg import DenseVector, Vector

from dist_mnist.data.parquet import first_nonfinite, nonfinite_name
from dist_mnist.files.atomic import npz_bytes, parse_json_object
from dist_mnist.files.model import MODEL_JSON, MODEL_NPZ, check_layer_sizes, check_params, model_bytes
from dist_mnist.files.npz import NPZ_SLACK, parse_npz
from dist_mnist.ml import scoring
from dist_mnist.ml.params import MLPParams
from dist_mnist.ml.persistence import MLPReadable, MLPWritable
from dist_mnist.nn.model import Params, layer_sizes_of
from dist_mnist.scoring import FIELDS, Shipped, scores_of

if TYPE_CHECKING:
    from dist_mnist.hints import SparkSession

SUMMARY_JSON = "summary.json"  # the training summary, beside the model's MODEL_NPZ and MODEL_JSON


@dataclass(frozen=True)
class TrainingSummary:
    """What fit measured: metrics.json's content (per-epoch loss, validation accuracy and
    times; rounds; final scores) and the staging and training seconds."""

    metrics: dict
    staging_seconds: float
    train_seconds: float

    @property
    def epochs(self) -> list[dict]:
        """One dict an epoch: epoch, train_loss, wall_seconds, ... and test_accuracy with validation."""
        return list(self.metrics.get("epochs", []))

    @property
    def objectiveHistory(self) -> list[float]:
        """Mean training loss of each epoch (MLlib's name)."""
        return [e["train_loss"] for e in self.epochs]

    @property
    def validationAccuracy(self) -> list[float]:
        """Accuracy on the validation rows after each epoch; empty without validationIndicatorCol."""
        return [e["test_accuracy"] for e in self.epochs if "test_accuracy" in e]

    @property
    def totalIterations(self) -> int:
        """Epochs run."""
        return len(self.epochs)

    @property
    def final(self) -> dict | None:
        """Final validation scores (accuracy, precision, recall, f1, examples), or None."""
        return self.metrics.get("final")

    def to_dict(self) -> dict:
        """summary.json's content."""
        return {"metrics": self.metrics, "staging_seconds": self.staging_seconds, "train_seconds": self.train_seconds}

    @classmethod
    def from_dict(cls, d: dict, where: str) -> TrainingSummary:
        """Read back to_dict's output; errors name `where`."""
        try:
            return cls(dict(d["metrics"]), float(d["staging_seconds"]), float(d["train_seconds"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{where}: not a training summary ({type(e).__name__}: {e})") from None


class MLPClassificationModel(Model, MLPParams, MLPWritable, MLPReadable):
    """A trained MLP: float32 parameters W0, b0, ..., model.json's metadata and the training summary."""

    def __init__(
        self, parameters: Params | None = None, meta: dict | None = None, summary: TrainingSummary | None = None
    ) -> None:
        super().__init__()
        # not `params` / `_params`: pyspark's Params uses those names for its Param list
        self._arrays = {k: np.asarray(v, np.float32) for k, v in (parameters or {}).items()}
        self._meta = dict(meta or {})
        self._summary = summary
        self._broadcast: tuple[Any, Any] | None = None  # (SparkContext, its broadcast of the parameters)
        if self._arrays:
            self._set(layers=layer_sizes_of(self._arrays))

    # --- what the model is ---
    @property
    def parameters(self) -> Params:
        """A copy of the parameters {"W0": (n_in, h), "b0": (h,), ...}, float32."""
        return {k: v.copy() for k, v in self._arrays.items()}

    @property
    def weights(self) -> DenseVector:
        """All parameters flat, in MLlib's MLPC layout: per layer W (row-major (fan_in, fan_out),
        which is MLlib's column-major (fan_out, fan_in)) then b."""
        n_layers = len(self._arrays) // 2
        parts = [a.ravel() for i in range(n_layers) for a in (self._arrays[f"W{i}"], self._arrays[f"b{i}"])]
        return DenseVector(np.concatenate(parts).astype(np.float64))

    @property
    def numFeatures(self) -> int:
        """Width of the input layer."""
        return int(self._arrays["W0"].shape[0])

    @property
    def numClasses(self) -> int:
        """Number of classes (width of the output layer)."""
        return int(self._arrays[f"b{len(self._arrays) // 2 - 1}"].shape[0])

    @property
    def modelMeta(self) -> dict:
        """model.json's content: layer_sizes, feature_kind, the resolved config, ..."""
        return json.loads(json.dumps(self._meta))

    @property
    def hasSummary(self) -> bool:
        """Whether the model holds a training summary (it does after fit, and after load of a fitted model)."""
        return self._summary is not None

    @property
    def summary(self) -> TrainingSummary:
        """The training summary; RuntimeError when there is none."""
        if self._summary is None:
            raise RuntimeError(f"No training summary available for this {type(self).__name__}")
        return self._summary

    # --- one vector, with NumPy ---
    def _row(self, value) -> np.ndarray:
        x = value.toArray() if isinstance(value, Vector) else np.asarray(value)
        if x.shape != (self.numFeatures,):
            raise ValueError(
                f"{type(self).__name__}: expected a vector of {self.numFeatures} features, got shape {x.shape}"
            )
        if x.dtype == np.uint8:  # pixels
            return x[None, :]
        given = np.asarray(x, np.float64)[None, :]  # None reads as NaN
        with np.errstate(over="ignore"):
            x = given.astype(np.float32)
        bad = first_nonfinite(x)
        if bad:
            value = (
                nonfinite_name(given[bad])
                if not np.isfinite(given[bad])
                else f"{given[bad]:g} (beyond float32's range)"
            )
            raise ValueError(
                f"{type(self).__name__}: the vector has {value} at index {bad[1]}; features must be finite numbers"
            )
        return x

    def predict(self, value) -> float:
        """The predicted class of one feature vector (pyspark Vector or array-like)."""
        return float(scores_of(self._arrays, self._row(value)).prediction[0])

    def predictProbability(self, value) -> DenseVector:
        """The class probabilities of one feature vector."""
        return DenseVector(scores_of(self._arrays, self._row(value)).probability[0].astype(np.float64))

    def predictRaw(self, value) -> DenseVector:
        """The logits (rawPrediction) of one feature vector."""
        return DenseVector(scores_of(self._arrays, self._row(value)).rawPrediction[0].astype(np.float64))

    # --- a DataFrame ---
    def _shipped_params(self, spark: SparkSession):
        """The parameters as the executors get them: a broadcast made once per model and
        SparkContext (classic); in the scoring function's closure (Spark Connect: no broadcast)."""
        from dist_mnist.spark.session import is_connect

        if is_connect(spark):
            return Shipped(self._arrays)
        sc = spark.sparkContext
        if self._broadcast is None or self._broadcast[0] is not sc:
            self._broadcast = (sc, sc.broadcast(self._arrays))
        return self._broadcast[1]

    def _transform(self, dataset):
        from pyspark.ml.functions import array_to_vector
        from pyspark.sql import functions as F

        if not self._arrays:
            raise RuntimeError(f"{type(self).__name__} has no parameters (build it with fit or load)")
        column = self.getFeaturesCol()
        if column not in dataset.columns:
            raise ValueError(
                f"{scoring.WHERE}: featuresCol {column!r}: no such column; the DataFrame has {dataset.columns}"
            )
        field = dataset.schema[column]
        kind = scoring.feature_kind(field.dataType, column)
        size = scoring.declared_width(field)
        if size is not None and size != self.numFeatures:
            raise ValueError(
                f"{scoring.WHERE}: featuresCol {column!r} holds vectors of {size} values "
                f"(its metadata says), expected {self.numFeatures} (the model's n_in)"
            )
        outputs = {name: self.getOrDefault(getattr(self, f"{name}Col")) for name in FIELDS}
        outputs = {name: col for name, col in outputs.items() if col}  # "" = not produced (MLlib's convention)
        clash = [col for col in outputs.values() if col in dataset.columns]
        if clash:
            raise ValueError(
                f"{scoring.WHERE}: output column(s) {clash} already exist in the DataFrame; "
                f"rename them or set other prediction/probability/rawPrediction columns"
            )
        if not outputs:
            logging.getLogger(__name__).warning("%s: every output column is set to ''; nothing to do", scoring.WHERE)
            return dataset
        handle_invalid = self.getHandleInvalid()
        from dist_mnist.spark.executors import prepare_executors

        prepare_executors(dataset.sparkSession)  # the executors import dist_mnist.ml.scoring to score
        udf = scoring.make_scoring_udf(
            self._shipped_params(dataset.sparkSession), column, kind, self.numFeatures, handle_invalid
        )
        if '"type":"udt"' in dataset.schema.json():
            # Spark 4.3 feeds an Arrow UDF whose child is columnar (a Parquet scan) through
            # RowToColumnConverter, which fails on any vector column ("Unsupported data type
            # UDT"; spark.sql.execution.arrow.pythonUDF.columnarInput.enabled). A Filter that
            # keeps every row is a row-based operator the optimizer leaves in between.
            dataset = dataset.where(F.col(column).isNull() | F.col(column).isNotNull())
        scored = F.col("__dist_mnist_scores")

        def checked(field: str):
            # a bad row's error is raised here, on the JVM: the user sees its one line, no traceback
            value = F.when(scored["error"].isNotNull(), F.raise_error(scored["error"])).otherwise(scored[field])
            # array_to_vector fails on a null (handleInvalid 'keep')
            return value if field == "prediction" else F.when(value.isNotNull(), array_to_vector(value))

        out = {name: checked(name) for name in FIELDS}
        frame = dataset.withColumn("__dist_mnist_scores", udf(scoring.input_expr(column, field.dataType)))
        if handle_invalid == "skip":
            frame = frame.where(scored.isNotNull())  # invalid rows come back as a null struct
        return frame.select(
            *[F.col("`" + c.replace("`", "``") + "`") for c in dataset.columns],
            *[out[name].alias(col) for name, col in outputs.items()],
        )

    # --- persistence (dist_mnist.ml.persistence) ---
    def _data_files(self) -> dict[str, bytes]:
        files = {
            MODEL_NPZ: npz_bytes(self._arrays),
            MODEL_JSON: json.dumps(self._meta, indent=2, allow_nan=False).encode(),
        }
        if self._summary is not None:
            files[SUMMARY_JSON] = json.dumps(self._summary.to_dict(), indent=2, allow_nan=False).encode()
        return files

    def _load_data(self, read, where: str) -> None:
        meta = parse_json_object(read(MODEL_JSON), f"{where}/{MODEL_JSON}")
        sizes = check_layer_sizes(meta, f"{where}/{MODEL_JSON}")
        arrays = parse_npz(read(MODEL_NPZ), f"{where}/{MODEL_NPZ}", model_bytes(sizes) + NPZ_SLACK)
        self._arrays = check_params(arrays, sizes, f"{where}/{MODEL_NPZ}")
        self._meta = meta
        try:
            summary = parse_json_object(read(SUMMARY_JSON), f"{where}/{SUMMARY_JSON}")
        except FileNotFoundError:
            summary = None
        self._summary = None if summary is None else TrainingSummary.from_dict(summary, f"{where}/{SUMMARY_JSON}")
