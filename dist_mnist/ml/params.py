"""The Params shared by MLPClassifier and MLPClassificationModel, and their map to TrainConfig.

MLlib's names where MultilayerPerceptronClassifier has them (layers, maxIter, blockSize,
stepSize, seed and the column params, from pyspark.ml.param.shared), our own for the rest.
Every training default comes from dist_mnist.config.TrainConfig (DL4J's tutorial), through
the one table CONFIG_OF_PARAM, so the two cannot drift apart.
"""

from __future__ import annotations

import dataclasses

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import (
    HasBlockSize,
    HasFeaturesCol,
    HasLabelCol,
    HasMaxIter,
    HasMomentum,
    HasPredictionCol,
    HasProbabilityCol,
    HasRawPredictionCol,
    HasSeed,
    HasStepSize,
    HasValidationIndicatorCol,
)

from dist_mnist.config import TrainConfig
from dist_mnist.ml.scoring import HANDLE_INVALID

# Param name -> TrainConfig field; the Params' defaults are TrainConfig's.
CONFIG_OF_PARAM = {
    "seed": "seed",
    "maxIter": "epochs",
    "blockSize": "batch_size",
    "stepSize": "learning_rate",
    "momentum": "momentum",
    "l2": "l2",
    "mode": "mode",
    "workers": "workers",
}


def _handle_invalid(value) -> str:
    value = TypeConverters.toString(value)
    if value not in HANDLE_INVALID:
        raise ValueError(f"handleInvalid must be one of {list(HANDLE_INVALID)}, got {value!r}")
    return value


class MLPParams(
    HasFeaturesCol,
    HasLabelCol,
    HasPredictionCol,
    HasProbabilityCol,
    HasRawPredictionCol,
    HasValidationIndicatorCol,
    HasMaxIter,
    HasSeed,
    HasStepSize,
    HasBlockSize,
    HasMomentum,
):
    """Params of dist-mnist's MLP: the network, DL4J's Nesterov updater, and how to distribute it."""

    layers: Param[list[int]] = Param(
        Params._dummy(),
        "layers",
        "sizes of the layers from input to output, e.g. [784, 1000, 10]; unset: [n_in, 1000, n_classes] "
        "with n_in from the features and n_classes = the largest label + 1",
        typeConverter=TypeConverters.toListInt,
    )
    l2: Param[float] = Param(
        Params._dummy(),
        "l2",
        "L2 regularisation of the weights (not the biases), >= 0",
        typeConverter=TypeConverters.toFloat,
    )
    mode: Param[str] = Param(
        Params._dummy(),
        "mode",
        "how workers combine: 'average' (local steps, then the parameters are averaged) or 'sync' "
        "(one global minibatch a round)",
        typeConverter=TypeConverters.toString,
    )
    workers: Param[int] = Param(
        Params._dummy(),
        "workers",
        "number of data-parallel workers; 0: Spark's defaultParallelism",
        typeConverter=TypeConverters.toInt,
    )
    tempDir: Param[str] = Param(
        Params._dummy(),
        "tempDir",
        "where fit stages the DataFrame as Parquet (any Hadoop path the executors can read; from a Spark "
        "Connect client, one this client reads too, through pyarrow.fs); unset: /tmp on Hadoop's default "
        "filesystem (fs.defaultFS), or the driver's (Connect: the client's) temp dir when that is local",
        typeConverter=TypeConverters.toString,
    )
    handleInvalid: Param[str] = Param(
        Params._dummy(),
        "handleInvalid",
        "what transform does with a row whose features are null or hold a null, NaN or infinite value: "
        "'error' (the default: fail, naming the column and the value's index), 'skip' (drop the row) or "
        "'keep' (null prediction, probability and rawPrediction); fit refuses such rows whatever it says",
        typeConverter=_handle_invalid,
    )

    def __init__(self, *args) -> None:
        super().__init__(*args)
        defaults = TrainConfig()
        self._setDefault(**{param: getattr(defaults, key) for param, key in CONFIG_OF_PARAM.items()})
        self._setDefault(handleInvalid="error")

    def setFeaturesCol(self, value: str) -> MLPParams:
        """Set featuresCol: a vector, array<float|double> or binary column."""
        return self._set(featuresCol=value)

    def setLabelCol(self, value: str) -> MLPParams:
        """Set labelCol: a numeric column of class ids 0..C-1."""
        return self._set(labelCol=value)

    def setPredictionCol(self, value: str) -> MLPParams:
        """Set predictionCol ("" = not produced)."""
        return self._set(predictionCol=value)

    def setProbabilityCol(self, value: str) -> MLPParams:
        """Set probabilityCol ("" = not produced)."""
        return self._set(probabilityCol=value)

    def setRawPredictionCol(self, value: str) -> MLPParams:
        """Set rawPredictionCol ("" = not produced)."""
        return self._set(rawPredictionCol=value)

    def setHandleInvalid(self, value: str) -> MLPParams:
        """Set handleInvalid: 'error', 'skip' or 'keep' (transform's rows with null or non-finite features)."""
        return self._set(handleInvalid=value)

    def getHandleInvalid(self) -> str:
        """The value of handleInvalid or its default ('error')."""
        return self.getOrDefault(self.handleInvalid)

    def getLayers(self) -> list[int]:
        """The value of layers (unset by default)."""
        return self.getOrDefault(self.layers)

    def getL2(self) -> float:
        """The value of l2 or its default."""
        return self.getOrDefault(self.l2)

    def getMode(self) -> str:
        """The value of mode or its default."""
        return self.getOrDefault(self.mode)

    def getWorkers(self) -> int:
        """The value of workers or its default."""
        return self.getOrDefault(self.workers)

    def getTempDir(self) -> str:
        """The value of tempDir (unset by default)."""
        return self.getOrDefault(self.tempDir)


def train_config(instance: MLPParams) -> TrainConfig:
    """The TrainConfig the Params describe (layer sizes from `layers` when set); ValueError
    names the Param of a bad value."""
    values = {key: instance.getOrDefault(param) for param, key in CONFIG_OF_PARAM.items()}
    if instance.isSet(instance.layers):
        values["layer_sizes"] = tuple(instance.getLayers())
    try:
        return dataclasses.replace(TrainConfig(), **values)
    except ValueError as e:
        names = {key: param for param, key in CONFIG_OF_PARAM.items()} | {"layer_sizes": "layers"}
        key = str(e).split(" ", 1)[0]
        raise ValueError(f"{type(instance).__name__} param {names.get(key, key)}: {e}") from None
