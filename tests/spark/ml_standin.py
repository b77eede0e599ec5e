"""A stand-in for dist_mnist.ml.staging.fit_dataframe while that module is not on this branch.

It keeps fit_dataframe's interface and result, but trains on the driver with the
single-process reference trainer (the oracle the Spark trainer is tested against). It does
no column checks: the tests of fit's column errors run only against the real staging.
"""

from __future__ import annotations

import dataclasses
import time
import types

import numpy as np

from dist_mnist.config import TrainConfig
from dist_mnist.reference import train_reference


def _arrays(df, features_col: str, label_col: str) -> tuple[np.ndarray, np.ndarray]:
    from pyspark.ml.functions import vector_to_array
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql import functions as F

    c = F.col(features_col)
    kind = df.schema[features_col].dataType
    x = vector_to_array(c, "float32") if isinstance(kind, VectorUDT) else c
    rows = df.select(x.alias("x"), F.col(label_col).cast("int").alias("y")).collect()
    if isinstance(rows[0]["x"], (bytes, bytearray)):
        X = np.stack([np.frombuffer(r["x"], np.uint8) for r in rows])
    else:
        X = np.asarray([r["x"] for r in rows], np.float32)
    return X, np.asarray([r["y"] for r in rows], np.int64)


def fit_dataframe(dataset, config: TrainConfig, layers, features_col, label_col, validation_col=None,
                  temp_dir=None, log=None):
    """fit_dataframe's result, trained on the driver by dist_mnist.reference."""
    from pyspark.sql import functions as F

    t0 = time.perf_counter()
    train = dataset if validation_col is None else dataset.where(~F.col(validation_col))
    X, y = _arrays(train, features_col, label_col)
    test = None if validation_col is None else _arrays(dataset.where(F.col(validation_col)), features_col, label_col)
    sizes = list(layers) if layers else [X.shape[1], 1000, int(y.max()) + 1]
    config = dataclasses.replace(config, layer_sizes=tuple(sizes), mode="sync")
    staging_seconds = time.perf_counter() - t0
    params, history = train_reference(config, X, y, test=test)
    meta = {"layer_sizes": sizes, "feature_kind": "image" if X.dtype == np.uint8 else "float",
            "config": config.to_dict()}
    return types.SimpleNamespace(params=params, model_meta=meta,
                                 metrics={"epochs": history, "rounds": {}, "final": None},
                                 staging_seconds=staging_seconds,
                                 train_seconds=time.perf_counter() - t0 - staging_seconds)


def install() -> bool:
    """Make `dist_mnist.ml.staging` importable: the real one if present, else this stand-in.
    Returns whether the real one is used."""
    import sys
    from pathlib import Path

    import dist_mnist

    # look for the file: importing dist_mnist.ml would already need the module
    if (Path(dist_mnist.__file__).parent / "ml" / "staging.py").is_file():
        return True
    sys.modules["dist_mnist.ml.staging"] = types.SimpleNamespace(fit_dataframe=fit_dataframe, __name__="dist_mnist.ml.staging")
    return False
