"""Run directories' models read back and compared: bit for bit, or within ATOL across machines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PARAMS = ("W0", "b0", "W1", "b1")
ATOL = 1e-6  # sync mode sums the same float64 partials in the same order wherever they ran


def read_params(run: Path) -> dict[str, np.ndarray]:
    """RUN/model.npz as plain arrays (no pickles allowed)."""
    with np.load(run / "model.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def assert_identical(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    """The same names in the same order, every array equal bit for bit."""
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def assert_same_model(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """Same parameter names, float32, equal within ATOL."""
    assert sorted(got) == sorted(want) == sorted(PARAMS)
    for name in PARAMS:
        assert got[name].dtype == np.float32, (name, got[name].dtype)
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=ATOL, err_msg=name)


def final_accuracy(run: Path) -> float:
    """The "accuracy" in RUN/model.json, wherever the final metrics sit in it."""

    def find(node):
        if isinstance(node, dict):
            if isinstance(node.get("accuracy"), (int, float)):
                return float(node["accuracy"])
            for value in node.values():
                found = find(value)
                if found is not None:
                    return found
        return None

    accuracy = find(json.loads((run / "model.json").read_text()))
    assert accuracy is not None, f"no accuracy in {run / 'model.json'}"
    return accuracy


def assert_run_written(run: Path) -> None:
    """The files every finished training run has."""
    for name in ("model.npz", "model.json", "metrics.json"):
        assert (run / name).is_file(), f"{run} lacks {name}"
