"""A run directory's life: refuse or stage it, resume it, write its outputs, swap it in place.

An unfinished run lives in RUN.partial/ (with its checkpoint) and becomes RUN/ only when it
has finished, so a failed or interrupted run never leaves a half-written RUN and never
replaces a good one. No Spark here.
"""

from __future__ import annotations

import os
import platform
import resource
import shutil
from pathlib import Path

import numpy as np

from dist_mnist.artifacts import (CHECKPOINT_NPZ, atomic_write_bytes, atomic_write_json, load_checkpoint,
                                  replace_directory, save_model)
from dist_mnist.config import TrainConfig, config_from_dict, differing_keys, local_learning_rate
from dist_mnist.data.ingest import read_metadata
from dist_mnist.metrics import stats_text
from dist_mnist.nn.model import Params


def partial_dir(run_dir: Path) -> Path:
    """Where an unfinished run lives until it completes and is renamed to run_dir."""
    return run_dir.with_name(run_dir.name + ".partial")


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
    saved = config_from_dict(meta["config"], str(where))
    diff = differing_keys(saved, config)
    if diff:
        detail = ", ".join(f"{k}: {getattr(saved, k)!r} -> {getattr(config, k)!r}" for k in diff)
        raise ValueError(f"--resume: config differs from the checkpoint's ({where}) in {detail}")


def check_resume(run_dir: str | os.PathLike, config: TrainConfig, resume: bool, overwrite: bool) -> None:
    """check_run_dir, and for --resume the checkpoint's config too; nothing is changed."""
    check_run_dir(run_dir, resume, overwrite)
    if resume:
        staging = partial_dir(Path(run_dir))
        check_same_config(load_checkpoint(staging)[2], config, staging / CHECKPOINT_NPZ)


def prepare_run_dir(run_dir: Path, config: TrainConfig, resume: bool, overwrite: bool):
    """The staging directory to train in, and the checkpoint (params, state, meta) or None."""
    staging = partial_dir(run_dir)
    check_run_dir(run_dir, resume, overwrite)
    if staging.exists() and not (staging / CHECKPOINT_NPZ).exists():
        shutil.rmtree(staging)  # a run that failed before its first checkpoint: nothing to keep
    if resume:
        params, state, meta = load_checkpoint(staging)
        check_same_config(meta, config, staging / CHECKPOINT_NPZ)
        return staging, (params, state, meta)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging, None


def finish_run_dir(staging: Path, run_dir: Path) -> None:
    """Drop the checkpoint and swap the finished staging directory into place."""
    (staging / CHECKPOINT_NPZ).unlink(missing_ok=True)
    replace_directory(staging, run_dir)


def write_outputs(staging: Path, config: TrainConfig, params: Params, final: dict | None, counts: np.ndarray | None,
                  history: list[dict], timings: dict, data_path: str, spark_version: str,
                  feature: str = "image") -> None:
    """model.npz, model.json, metrics.json, evaluation.txt and .json, each written atomically
    (the evaluation files only where there was a test set: final and counts not None)."""
    rounds = max(timings["rounds"], 1)
    breakdown = {k: {"total_seconds": timings.get(k, 0.0), "mean_ms": 1000 * timings.get(k, 0.0) / rounds}
                 for k in ("executor", "straggler", "overhead", "update")}
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
    breakdown["overhead_ms"] = {"median": float(np.median(overhead)) if overhead else 0.0,
                                "first_round": overhead[0] if overhead else 0.0,
                                "median_after_first": float(np.median(overhead[1:])) if overhead[1:] else 0.0}
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
        "layer_sizes": list(config.layer_sizes), "activations": ["relu"] * hidden + ["softmax"],
        # an `image` column's bytes are divided by 255 before the first layer; `features` are used as given
        "feature_kind": "image" if feature == "image" else "float",
        "input_scaling": "image_bytes / 255" if feature == "image" else "none", "config": config.to_dict(),
        "local_learning_rate": local_learning_rate(config),
        "data": {"path": data_path, "metadata": read_metadata(data_path)},
        "metrics": final_public,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "spark": spark_version},
    }
    save_model(staging, params, meta)
    atomic_write_json(staging / "metrics.json", {"epochs": history, "rounds": breakdown, "final": final_public})
    if counts is not None:
        atomic_write_bytes(staging / "evaluation.txt", (stats_text(counts) + "\n").encode())
        atomic_write_json(staging / "evaluation.json", {**final, "confusion": counts.tolist()})
