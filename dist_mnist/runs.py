"""A run directory's life: refuse or stage it, resume it, write its outputs, swap it in place.

An unfinished run lives in RUN.partial/ (with its checkpoint) and becomes RUN/ only when it
has finished, so a failed or interrupted run never leaves a half-written RUN and never
replaces a good one. One train at a time holds RUN (dist_mnist.paths.run_lock). No Spark here.
"""

from __future__ import annotations

import math
import os
import platform
import resource
import shutil
from pathlib import Path

import numpy as np

from dist_mnist.artifacts import (
    CHECKPOINT_NPZ,
    MODEL_JSON,
    MODEL_NPZ,
    WriteFailed,
    atomic_write_bytes,
    atomic_write_json,
    check_arrays,
    load_checkpoint,
    model_bytes,
    param_shapes,
    replace_directory,
    save_model,
    write_failure,
)
from dist_mnist.config import TrainConfig, config_from_dict, differing_keys, has_outer_step, local_learning_rate
from dist_mnist.data.ingest import read_metadata
from dist_mnist.features import FeatureKind
from dist_mnist.metrics import stats_text
from dist_mnist.nn.model import Params
from dist_mnist.nn.updaters import make_updater
from dist_mnist.npz import NPZ_SLACK
from dist_mnist.paths import check_writable_dir, refuse_overlap

METRICS_JSON, EVALUATION_TXT, EVALUATION_JSON = "metrics.json", "evaluation.txt", "evaluation.json"
RUN_FILES = (MODEL_NPZ, MODEL_JSON, METRICS_JSON, EVALUATION_TXT, EVALUATION_JSON)  # what train writes
CHECKPOINT_META_BYTES = 64 << 20  # a checkpoint's JSON counters and history (a few bytes a round)


def partial_dir(run_dir: Path) -> Path:
    """Where an unfinished run lives until it completes and is renamed to run_dir."""
    return run_dir.with_name(run_dir.name + ".partial")


def check_run_paths(run_dir: str | os.PathLike, data: str | os.PathLike) -> None:
    """Before anything is touched: RUN and RUN.partial apart from DATA, and RUN writable
    (not a dangling symlink or a file, its parent a directory this process can write in)."""
    run_dir = Path(run_dir)
    staging = partial_dir(run_dir)
    refuse_overlap(run_dir, "--out", {"--data": data})
    refuse_overlap(staging, "--out's staging directory", {"--data": data})
    check_writable_dir(run_dir, "--out")
    if staging.is_symlink() or (staging.exists() and not staging.is_dir()):
        raise ValueError(
            f"{staging}: expected the staging directory of an unfinished run, found a "
            f"{'symlink' if staging.is_symlink() else 'file'}; remove it or choose another --out"
        )


def check_run_dir(run_dir: str | os.PathLike, resume: bool, overwrite: bool) -> None:
    """Refuse, before anything starts, a RUN that exists without --overwrite or --resume."""
    run_dir = Path(run_dir)
    staging = partial_dir(run_dir)
    unfinished = (staging / CHECKPOINT_NPZ).exists()
    if resume:
        if run_dir.exists() and not unfinished:
            raise FileExistsError(f"{run_dir}: this run already finished; nothing to resume")
        if not unfinished:
            raise FileNotFoundError(f"{staging}: no checkpoint to resume from (start without --resume)")
    elif (run_dir.exists() or unfinished) and not overwrite:
        which = run_dir if run_dir.exists() else staging
        raise FileExistsError(f"{which}: already exists (pass --overwrite to replace it, or --resume to continue)")


def check_same_config(meta: dict, config: TrainConfig, where: Path) -> None:
    """--resume continues the same run: refuse a config that differs, naming the keys."""
    if not isinstance(meta.get("config"), dict):
        raise ValueError(f"{where}: not a dist-mnist checkpoint (its meta has no 'config' object)")
    saved = config_from_dict(meta["config"], str(where))
    diff = differing_keys(saved, config)
    if diff:
        detail = ", ".join(f"{k}: {getattr(saved, k)!r} -> {getattr(config, k)!r}" for k in diff)
        raise ValueError(f"--resume: config differs from the checkpoint's ({where}) in {detail}")


def read_checkpoint(staging: Path, config: TrainConfig) -> tuple[Params, Params, dict]:
    """RUN.partial's checkpoint, checked as a model is: the same config, every array float32,
    finite and of the shape the config's layers give, counters that fit the run."""
    where = staging / CHECKPOINT_NPZ
    # parameters, updater state and outer velocity: at most three models' worth, and the counters
    limit = 3 * model_bytes(config.layer_sizes) + CHECKPOINT_META_BYTES + NPZ_SLACK
    params, state, meta = load_checkpoint(staging, limit)
    check_same_config(meta, config, where)
    shapes = param_shapes(config.layer_sizes)
    layers = f"layers {list(config.layer_sizes)}"
    check_arrays(params, shapes, str(where), layers, "param/")
    outer = {k[len("outer/") :]: v for k, v in state.items() if k.startswith("outer/")}
    updater = make_updater(config.updater, config.learning_rate, config.momentum, config.l2)
    state_shapes = {k: v.shape for k, v in updater.init_state(params).items()}
    check_arrays(
        {k: v for k, v in state.items() if not k.startswith("outer/")},
        state_shapes,
        str(where),
        f"{layers} and updater {config.updater!r}",
        "state/",
    )
    check_arrays(
        outer,
        shapes if has_outer_step(config) else {},
        str(where),
        f"{layers} and outer_updater {config.outer_updater!r}",
        "state/outer/",
    )
    check_counters(meta, config, where)
    return params, state, meta


def check_counters(meta: dict, config: TrainConfig, where: Path) -> None:
    """A checkpoint's position: non-negative counts, no more epochs than the run has."""
    for key in ("epoch", "round_in_epoch", "global_round", "epoch_seen"):
        value = meta.get(key)
        if not (type(value) is int and value >= 0):
            raise ValueError(f"{where}: counter {key!r} must be a non-negative integer, got {value!r}")
    for key in ("epoch_loss", "epoch_seconds"):
        value = meta.get(key)
        if not (type(value) in (int, float) and math.isfinite(value) and value >= 0):
            raise ValueError(f"{where}: {key!r} must be a finite number >= 0, got {value!r}")
    if meta["epoch"] > config.epochs or (meta["epoch"] == config.epochs and meta["round_in_epoch"]):
        raise ValueError(
            f"{where}: at epoch {meta['epoch']} round {meta['round_in_epoch']}, past the run's {config.epochs} epochs"
        )
    history = meta.get("history")
    if not (isinstance(history, list) and len(history) == meta["epoch"] and all(isinstance(h, dict) for h in history)):
        raise ValueError(f"{where}: 'history' must hold one record per finished epoch ({meta['epoch']})")
    if not (isinstance(meta.get("timings"), dict) and type(meta["timings"].get("rounds")) is int):
        raise ValueError(f"{where}: 'timings' must be an object with a count of 'rounds'")


def check_rounds(epoch: int, round_in_epoch: int, global_round: int, per_epoch: int, where: Path) -> None:
    """A resumed position against the run's rounds an epoch (known once the data is)."""
    if round_in_epoch >= per_epoch or global_round != epoch * per_epoch + round_in_epoch:
        raise ValueError(
            f"{where}: round {round_in_epoch} of epoch {epoch} (round {global_round} overall) does not "
            f"fit {per_epoch} rounds an epoch; was the data changed?"
        )


def check_resume(run_dir: str | os.PathLike, config: TrainConfig, resume: bool, overwrite: bool) -> None:
    """check_run_dir, and for --resume the checkpoint too; nothing is changed."""
    check_run_dir(run_dir, resume, overwrite)
    if resume:
        read_checkpoint(partial_dir(Path(run_dir)), config)


def prepare_run_dir(run_dir: Path, config: TrainConfig, resume: bool, overwrite: bool):
    """The staging directory to train in, and the checkpoint (params, state, meta) or None."""
    staging = partial_dir(run_dir)
    check_run_dir(run_dir, resume, overwrite)
    if staging.exists() and not (staging / CHECKPOINT_NPZ).exists():
        shutil.rmtree(staging)  # a run that failed before its first checkpoint: nothing to keep
    if resume:
        return staging, read_checkpoint(staging, config)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging, None


def discard_unless_checkpointed(staging: Path) -> bool:
    """Remove a staging directory that holds no checkpoint (a run that stopped before its
    first one); whether it was removed."""
    if staging.is_dir() and not (staging / CHECKPOINT_NPZ).exists():
        shutil.rmtree(staging, ignore_errors=True)
        return True
    return False


def finish_run_dir(staging: Path, run_dir: Path) -> list[str]:
    """Swap the finished staging directory into place, keeping what else RUN held; the names kept.

    Files train did not write (model.onnx, report/, notes) are linked (else copied) into the
    new directory first, so the old RUN stays whole until the swap. The checkpoint goes last:
    until RUN is in place, RUN.partial can still be resumed.
    """
    kept = (
        [name for name in sorted(os.listdir(run_dir)) if name not in (*RUN_FILES, CHECKPOINT_NPZ)]
        if run_dir.is_dir()
        else []
    )
    try:
        for name in os.listdir(staging):  # what an interrupted finish had carried over
            if name not in (*RUN_FILES, CHECKPOINT_NPZ):
                _remove(staging / name)
        for name in kept:
            _link_tree(run_dir / name, staging / name)
        replace_directory(staging, run_dir)
    except OSError as e:
        failure = write_failure(e, run_dir)
        if failure is None:
            raise
        raise failure from e
    (run_dir / CHECKPOINT_NPZ).unlink(missing_ok=True)
    return [name + "/" if (run_dir / name).is_dir() and not (run_dir / name).is_symlink() else name for name in kept]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)  # same filesystem (RUN.partial is RUN's sibling): no bytes copied
    except OSError:
        shutil.copy2(src, dst)


def _link_tree(src: Path, dst: Path) -> None:
    """`src` (a file, a symlink or a directory tree) at `dst`, hard-linked where it can be."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(src), str(dst))


def with_resume_hint(e: WriteFailed, run_dir: Path) -> WriteFailed:
    """A failed write of a run, saying how to continue where RUN.partial holds a checkpoint."""
    staging = partial_dir(run_dir)
    if not (staging / CHECKPOINT_NPZ).is_file():
        return e
    return WriteFailed(e.errno, f"{e}; the last good checkpoint is kept in {staging}: then train --resume")


def write_outputs(
    staging: Path,
    config: TrainConfig,
    params: Params,
    final: dict | None,
    counts: np.ndarray | None,
    history: list[dict],
    timings: dict,
    data_path: str,
    spark_version: str,
    feature: str = "image",
) -> None:
    """model.npz, model.json, metrics.json, evaluation.txt and .json, each written atomically
    (the evaluation files only where there was a test set: final and counts not None)."""
    rounds = max(timings["rounds"], 1)
    breakdown = {
        k: {"total_seconds": timings.get(k, 0.0), "mean_ms": 1000 * timings.get(k, 0.0) / rounds}
        for k in ("executor", "straggler", "overhead", "update")
    }
    breakdown["rounds"] = timings["rounds"]
    breakdown["transport"] = timings.get("transport")
    # the round channel: messages dropped for not answering the round in flight, connections
    # refused before authenticating, by reason (empty unless the barrier transport ran)
    breakdown["dropped_messages"] = timings.get("dropped_messages", {})
    breakdown["refused_connections"] = timings.get("refused_connections", {})
    breakdown["phases_seconds"] = {k: round(v, 3) for k, v in timings.get("phases", {}).items()}
    overhead = timings.get("overhead_ms", [])
    # per round: the time a round costs beyond the slowest worker's compute and the update;
    # the first round also starts the workers and loads the shards
    breakdown["overhead_ms"] = {
        "median": float(np.median(overhead)) if overhead else 0.0,
        "first_round": overhead[0] if overhead else 0.0,
        "median_after_first": float(np.median(overhead[1:])) if overhead[1:] else 0.0,
    }
    # PSS of the shard file mappings summed over the Python workers of the last round, and the
    # uint8 size of the data they hold (train + test). Only the mapped files: it can never exceed
    # them. What the workers hold in all (Arrow buffers, float copies, NumPy) is measured from
    # outside by benchmarks/memory.py.
    breakdown["shard_memory_bytes"] = timings.get("shard_bytes", 0)
    breakdown["data_uint8_bytes"] = timings.get("data_bytes", 0)
    # the driver's Python process only (RUSAGE_SELF): the JVM it talks to is a separate process,
    # measured by benchmarks/memory.py
    breakdown["driver_peak_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    final_public = {k: final[k] for k in ("examples", "accuracy", "precision", "recall", "f1")} if final else None
    hidden = len(config.layer_sizes) - 2
    meta = {
        "layer_sizes": list(config.layer_sizes),
        "activations": ["relu"] * hidden + ["softmax"],
        # an `image` column's bytes are divided by 255 before the first layer; `features` are used as given
        "feature_kind": FeatureKind(feature).value,
        "input_scaling": "image_bytes / 255" if feature == "image" else "none",
        "config": config.to_dict(),
        "local_learning_rate": local_learning_rate(config),
        # resolved: `report` and `evaluate` find it from any directory
        "data": {
            "path": data_path if "://" in data_path else os.path.abspath(data_path),
            "metadata": read_metadata(data_path),
        },
        "metrics": final_public,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "spark": spark_version},
    }
    save_model(staging, params, meta)
    atomic_write_json(staging / METRICS_JSON, {"epochs": history, "rounds": breakdown, "final": final_public})
    if counts is not None:
        atomic_write_bytes(staging / EVALUATION_TXT, (stats_text(counts) + "\n").encode())
        atomic_write_json(staging / EVALUATION_JSON, {**final, "confusion": counts.tolist()})
