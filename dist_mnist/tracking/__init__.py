"""Experiment tracking: what the driver tells a tracker about a run, kept from ever failing it.

The driver's side (Tracker, Guarded, RunStart: the calls the driver makes) is in
dist_mnist.driver.tracker; the names are here too.
facts.py      what is logged, as plain values: the store's URI, params, tags, final metrics
mlflow_tracker.py  MLflowTracker (the `mlflow` extra, imported only when tracking is asked for)
model.py      the run's model as MLflow models (pyfunc from code: pyfunc_model.py; ONNX; Spark)
fit.py        MLPClassifier.fit's tracker: the active MLflow run's, like autolog

Nothing here imports MLflow: a user without the extra never loads it.
"""

from dist_mnist.driver.tracker import Guarded, RunStart, Tracker, default_tracker, one_line

__all__ = ["Guarded", "RunStart", "Tracker", "default_tracker", "one_line"]
