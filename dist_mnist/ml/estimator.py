"""MLPClassifier: dist-mnist's distributed MLP trainer as a pyspark.ml Estimator.

`fit(df)` stages the DataFrame in our Parquet layout and runs the same trainer as
jobs/train.py (dist_mnist.ml.staging), then wraps the result as an MLPClassificationModel
carrying this estimator's Params, the trained layer sizes and the training summary.
"""

from __future__ import annotations

import logging
from typing import Any

from pyspark import keyword_only
from pyspark.ml import Estimator

from dist_mnist.config import TrainConfig
from dist_mnist.ml.model import MLPClassificationModel, TrainingSummary
from dist_mnist.ml.params import MLPParams, train_config
from dist_mnist.ml.persistence import MLPReadable, MLPWritable

_log = logging.getLogger(__name__)
_D = TrainConfig()  # the signatures' defaults: the tutorial's, as MLPParams sets them


class MLPClassifier(Estimator, MLPParams, MLPWritable, MLPReadable):
    """DL4J's MNIST MLP (ReLU hidden layers, softmax output, Nesterov momentum, L2) trained
    data-parallel on Spark.

    >>> from pyspark.ml.feature import VectorAssembler
    >>> clf = MLPClassifier(layers=[20, 16, 3], maxIter=5, featuresCol="features", labelCol="label")
    >>> model = clf.fit(train_df)              # doctest: +SKIP
    >>> model.transform(test_df).select("prediction", "probability")  # doctest: +SKIP
    """

    _input_kwargs: dict[str, Any]  # set by @keyword_only

    @keyword_only
    def __init__(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        probabilityCol: str = "probability",
        rawPredictionCol: str = "rawPrediction",
        validationIndicatorCol: str | None = None,
        layers: list[int] | None = None,
        maxIter: int = _D.epochs,
        blockSize: int = _D.batch_size,
        stepSize: float = _D.learning_rate,
        seed: int = _D.seed,
        momentum: float = _D.momentum,
        l2: float = _D.l2,
        mode: str = _D.mode,
        workers: int = _D.workers,
        tempDir: str | None = None,
        handleInvalid: str = "error",
    ) -> None:
        super().__init__()
        self.setParams(**self._input_kwargs)

    @keyword_only
    def setParams(
        self,
        *,
        featuresCol: str = "features",
        labelCol: str = "label",
        predictionCol: str = "prediction",
        probabilityCol: str = "probability",
        rawPredictionCol: str = "rawPrediction",
        validationIndicatorCol: str | None = None,
        layers: list[int] | None = None,
        maxIter: int = _D.epochs,
        blockSize: int = _D.batch_size,
        stepSize: float = _D.learning_rate,
        seed: int = _D.seed,
        momentum: float = _D.momentum,
        l2: float = _D.l2,
        mode: str = _D.mode,
        workers: int = _D.workers,
        tempDir: str | None = None,
        handleInvalid: str = "error",
    ) -> MLPClassifier:
        """Set the given Params (only those passed); ValueError names a bad one."""
        kwargs = {k: v for k, v in self._input_kwargs.items() if v is not None}
        self._set(**kwargs)
        train_config(self)  # validate now, not at fit
        return self

    def setValidationIndicatorCol(self, value: str) -> MLPClassifier:
        """Set validationIndicatorCol: a boolean column, true for the validation rows."""
        return self._set(validationIndicatorCol=value)

    def setLayers(self, value: list[int]) -> MLPClassifier:
        """Set layers: [n_in, hidden..., n_classes]."""
        return self._set(layers=value)

    def setMaxIter(self, value: int) -> MLPClassifier:
        """Set maxIter: the number of epochs."""
        return self._set(maxIter=value)

    def setBlockSize(self, value: int) -> MLPClassifier:
        """Set blockSize: the minibatch size."""
        return self._set(blockSize=value)

    def setStepSize(self, value: float) -> MLPClassifier:
        """Set stepSize: the learning rate."""
        return self._set(stepSize=value)

    def setSeed(self, value: int) -> MLPClassifier:
        """Set seed: initialisation, data order and sampling."""
        return self._set(seed=value)

    def setMomentum(self, value: float) -> MLPClassifier:
        """Set momentum: Nesterov momentum, in [0, 1)."""
        return self._set(momentum=value)

    def setL2(self, value: float) -> MLPClassifier:
        """Set l2: weight decay of the weights, >= 0."""
        return self._set(l2=value)

    def setMode(self, value: str) -> MLPClassifier:
        """Set mode: 'average' or 'sync'."""
        return self._set(mode=value)

    def setWorkers(self, value: int) -> MLPClassifier:
        """Set workers: data-parallel workers, 0 = Spark's defaultParallelism."""
        return self._set(workers=value)

    def setTempDir(self, value: str) -> MLPClassifier:
        """Set tempDir: where fit stages the DataFrame (any Hadoop path; under Spark Connect, one pyarrow.fs reads)."""
        return self._set(tempDir=value)

    def _fit(self, dataset) -> MLPClassificationModel:
        from dist_mnist.tracking.fit import fit_tracking

        with fit_tracking() as tracker:  # None unless an MLflow run is active (dist_mnist.tracking.fit)
            model = self._fit_tracked(dataset, tracker)
            if tracker is not None:
                tracker.call("log_fitted", model)
        return model

    def _fit_tracked(self, dataset, tracker) -> MLPClassificationModel:
        # imported here: the trainer is the driver's business, and executors that import
        # dist_mnist.ml to score need none of it
        from dist_mnist.ml.fitting import fit_dataframe

        config = train_config(self)
        result = fit_dataframe(
            dataset,
            config,
            self.getLayers() if self.isSet(self.layers) else None,
            self.getFeaturesCol(),
            self.getLabelCol(),
            self.getValidationIndicatorCol() if self.isSet(self.validationIndicatorCol) else None,
            self.getTempDir() if self.isSet(self.tempDir) else None,
            _log.info,
            tracker,
        )
        summary = TrainingSummary(result.metrics, result.staging_seconds, result.train_seconds)
        model = MLPClassificationModel(result.params, result.model_meta, summary)
        self._copyValues(model)
        model._set(layers=list(result.model_meta["layer_sizes"]))  # the sizes trained, also when unset here
        return model
