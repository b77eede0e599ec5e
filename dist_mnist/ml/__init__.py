"""dist-mnist for pyspark.ml: the MLPClassifier Estimator and its MLPClassificationModel.

The classes are imported on first use: dist_mnist.ml.scoring, the scoring path that
`dist-mnist predict` shares with transform, then loads in a Python worker without pyspark.ml.
"""

from __future__ import annotations

import importlib

__all__ = ["MLPClassificationModel", "MLPClassifier", "TrainingSummary"]
_MODULES = {
    "MLPClassifier": "dist_mnist.ml.estimator",
    "MLPClassificationModel": "dist_mnist.ml.model",
    "TrainingSummary": "dist_mnist.ml.model",
}


def __getattr__(name: str):
    if name in _MODULES:
        return getattr(importlib.import_module(_MODULES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
