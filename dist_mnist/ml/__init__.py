"""dist-mnist for pyspark.ml: the MLPClassifier Estimator and its MLPClassificationModel."""

from dist_mnist.ml.estimator import MLPClassifier
from dist_mnist.ml.model import MLPClassificationModel, TrainingSummary

__all__ = ["MLPClassifier", "MLPClassificationModel", "TrainingSummary"]
