"""A model's files: model.npz (W0, b0, ... float32) + model.json, and the checks every reader applies.

Nothing here uses pickle: arrays are .npz loaded with allow_pickle=False, the rest is JSON."""

from __future__ import annotations

import itertools
import math
import os
from pathlib import Path

import numpy as np

from dist_mnist.files.atomic import atomic_write_json, atomic_write_npz, read_json
from dist_mnist.files.npz import NPZ_SLACK, read_npz
from dist_mnist.nn.model import Params

MODEL_NPZ, MODEL_JSON = "model.npz", "model.json"


def check_layer_sizes(meta: dict, where: str) -> list[int]:
    """model.json's 'layer_sizes': a list of at least two positive ints; errors name `where`."""
    sizes = meta.get("layer_sizes")
    if not (isinstance(sizes, list) and len(sizes) >= 2 and all(isinstance(s, int) and s > 0 for s in sizes)):
        raise ValueError(f"{where}: 'layer_sizes' must be a list of positive ints, got {sizes!r}")
    return sizes


def param_shapes(layer_sizes: list[int] | tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """{"W0": (n_in, n_out), "b0": (n_out,), ...}: the arrays of an MLP with these layer sizes."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(layer_sizes)):
        shapes[f"W{i}"], shapes[f"b{i}"] = (n_in, n_out), (n_out,)
    return shapes


def model_bytes(layer_sizes: list[int] | tuple[int, ...]) -> int:
    """The float32 bytes of an MLP's parameters."""
    return 4 * sum(math.prod(shape) for shape in param_shapes(layer_sizes).values())


def check_params(params: dict[str, np.ndarray], layer_sizes: list[int], where: str) -> Params:
    """Keys W0,b0,... with float32 shapes matching layer_sizes; errors name `where`."""
    return check_arrays(params, param_shapes(layer_sizes), where, f"layers {list(layer_sizes)}")


def check_arrays(
    arrays: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]], where: str, what: str, prefix: str = ""
) -> Params:
    """Exactly the keys of `shapes`, each float32 of that shape and finite; errors name `where`,
    the array (as `prefix` + key) and `what` the shapes come from."""
    missing = [prefix + k for k in shapes if k not in arrays]
    if missing:
        raise ValueError(f"{where}: missing arrays {missing} for {what}")
    extra = sorted(prefix + k for k in set(arrays) - set(shapes))
    if extra:
        raise ValueError(f"{where}: unexpected arrays {extra} for {what}")
    for k, shape in shapes.items():
        a = arrays[k]
        if a.dtype != np.float32:
            raise ValueError(f"{where}: array {prefix}{k} has dtype {a.dtype}, expected float32")
        if a.shape != shape:
            raise ValueError(f"{where}: array {prefix}{k} has shape {a.shape}, expected {shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{where}: array {prefix}{k} has NaN or inf values")
    return {k: arrays[k] for k in shapes}


def model_files(run_dir: str | os.PathLike, flag: str = "--model") -> dict[str, Path]:
    """{"--model's model.npz": RUN/model.npz, ...}: what an output must not overwrite (paths.refuse_overlap)."""
    return {f"{flag}'s {name}": Path(run_dir) / name for name in (MODEL_NPZ, MODEL_JSON)}


def save_model(run_dir: str | os.PathLike, params: Params, meta: dict) -> None:
    """model.npz (W0, b0, ... float32) then model.json, each atomically."""
    run_dir = Path(run_dir)
    atomic_write_npz(run_dir / MODEL_NPZ, params)
    atomic_write_json(run_dir / MODEL_JSON, meta)


def load_model(run_dir: str | os.PathLike) -> tuple[Params, dict]:
    """Parameters and metadata of a saved model, checked against each other."""
    run_dir = Path(run_dir)
    meta = read_json(run_dir / MODEL_JSON)
    sizes = check_layer_sizes(meta, str(run_dir / MODEL_JSON))
    arrays = read_npz(run_dir / MODEL_NPZ, model_bytes(sizes) + NPZ_SLACK)  # no more than model.json implies
    params = check_params(arrays, sizes, str(run_dir / MODEL_NPZ))
    return params, meta
