"""dist-mnist for pyspark.ml: the MLPClassifier Estimator and its MLPClassificationModel.

estimator.py    MLPClassifier (fit)
model.py        MLPClassificationModel (transform, predict, predictProbability, summary)
params.py       the Params both share, and their map to TrainConfig
persistence.py  save/load in MLlib's directory layout
scoring.py      transform's Arrow UDF over dist_mnist.scoring's forward pass
staging.py      any DataFrame checked and written in our Parquet layout
fitting.py      fit's steps: stage, find the classes, train (dist_mnist.driver), clean up

The classes are imported on first use, so that dist_mnist.ml.scoring loads in a Python
worker without pyspark.ml.
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
