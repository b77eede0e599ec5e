"""The MLflow pyfunc model of a dist-mnist run: MLflow's "models from code" file.

MLflow copies this file into the logged model and runs it when the model loads: it needs
MLflow, NumPy and pandas, not dist-mnist, Spark or pickle. The model's artifacts are the run's
model.npz (W0, b0, ... float32, read with allow_pickle=False) and model.json (layer sizes,
feature kind). The forward pass is dist_mnist.nn.model's: `x = image_bytes / 255` (a "float"
model takes its features as given), `h = relu(x @ W + b)` per hidden layer, softmax of the last.

Input: a DataFrame with the column `dist-mnist predict` reads: `image` (binary, n_in bytes a
row) or, for a "float" model, `features` (n_in numbers a row). Output: a DataFrame of
`prediction` (double) and `probability` (n_classes float32 a row), as `predict` writes them.
Never imported by dist_mnist itself: dist_mnist.tracking.model logs it by path.
"""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

MODEL_NPZ, MODEL_JSON = "model_npz", "model_json"  # the artifacts' keys


def _inputs(frame: pd.DataFrame, kind: str, n_in: int) -> np.ndarray:
    """(n, n_in) uint8 pixels of an `image` column, or float32 rows of a `features` column."""
    column = "image" if kind == "image" else "features"
    if column not in frame.columns:
        raise ValueError(f"the input needs a column {column!r}; it has {list(frame.columns)}")
    rows = frame[column].tolist()
    unit = "bytes" if kind == "image" else "values"
    for i, row in enumerate(rows):
        if row is None or len(row) != n_in:
            got = "null" if row is None else f"{len(row)} {unit}"
            raise ValueError(f"column {column!r} has a row of {got} at row {i}; expected {n_in} {unit}")
    if kind == "image":
        return np.frombuffer(b"".join(bytes(r) for r in rows), np.uint8).reshape(len(rows), n_in)
    x = np.asarray([np.asarray(r, np.float32) for r in rows], np.float32).reshape(len(rows), n_in)
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ValueError(f"column {column!r} has a NaN or infinite value at row {row}; features must be finite")
    return x


class MLPModel(PythonModel):
    """dist-mnist's MLP over model.npz + model.json."""

    def load_context(self, context) -> None:
        with np.load(context.artifacts[MODEL_NPZ], allow_pickle=False) as npz:
            self.params = {k: npz[k].astype(np.float32, copy=False) for k in npz.files}
        with open(context.artifacts[MODEL_JSON]) as f:
            meta = json.load(f)
        self.sizes = [int(s) for s in meta["layer_sizes"]]
        self.kind = meta.get("feature_kind", "image")

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        x = _inputs(model_input, self.kind, self.sizes[0])
        h = x.astype(np.float32) * np.float32(1.0 / 255.0) if x.dtype == np.uint8 else x  # (n, n_in)
        n_layers = len(self.sizes) - 1
        for i in range(n_layers - 1):
            h = np.maximum(h @ self.params[f"W{i}"] + self.params[f"b{i}"], np.float32(0.0))
        logits = h @ self.params[f"W{n_layers - 1}"] + self.params[f"b{n_layers - 1}"]  # (n, C)
        z = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs = z / z.sum(axis=1, keepdims=True)
        return pd.DataFrame({"prediction": probs.argmax(axis=1).astype(np.float64), "probability": list(probs)})


mlflow.models.set_model(MLPModel())
