"""A run directory's life: refuse or stage it, resume it, write its outputs, swap it in place.

An unfinished run lives in RUN.partial/ (with its checkpoint) and becomes RUN/ only when it
has finished, so a failed or interrupted run never leaves a half-written RUN and never
replaces a good one. One train at a time holds RUN (dist_mnist.files.paths.run_lock). No Spark here.
"""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

import numpy as np

from dist_mnist.config import TrainConfig
from dist_mnist.data.features import FeatureKind
from dist_mnist.data.ingest import read_metadata
from dist_mnist.driver.checkpoint import CHECKPOINT_NPZ
from dist_mnist.files.atomic import WriteFailed, atomic_write_bytes, atomic_write_json, replace_directory, write_failure
from dist_mnist.files.model import MODEL_JSON, MODEL_NPZ, save_model
from dist_mnist.files.paths import check_writable_dir, refuse_overlap
from dist_mnist.metrics import stats_text
from dist_mnist.modes import local_learning_rate
from dist_mnist.nn.model import Params

METRICS_JSON, EVALUATION_TXT, EVALUATION_JSON = "metrics.json", "evaluation.txt", "evaluation.json"
RUN_FILES = (MODEL_NPZ, MODEL_JSON, METRICS_JSON, EVALUATION_TXT, EVALUATION_JSON)  # what train writes


def partial_dir(run_dir: Path) -> Path:
    """Where an unfinished run lives until it completes and is renamed to run_dir."""
    return run_dir.with_name(run_dir.name + ".partial")


def check_run_paths(run_dir: str | os.PathLike, data: str | os.PathLike) -> None:
    """Before anything is touched: RUN and RUN.partial apart from DATA, and RUN writable
    (not a dangling symlink or a file, its parent a directory this process can write in)."""
    run_dir = Path(run_dir)
    partial = partial_dir(run_dir)
    refuse_overlap(run_dir, "--out", {"--data": data})
    refuse_overlap(partial, "--out's partial directory", {"--data": data})
    check_writable_dir(run_dir, "--out")
    if partial.is_symlink() or (partial.exists() and not partial.is_dir()):
        raise ValueError(
            f"{partial}: expected the partial directory of an unfinished run, found a "
            f"{'symlink' if partial.is_symlink() else 'file'}; remove it or choose another --out"
        )


def check_run_dir(run_dir: str | os.PathLike, resume: bool, overwrite: bool) -> None:
    """Refuse, before anything starts, a RUN that exists without --overwrite or --resume."""
    run_dir = Path(run_dir)
    partial = partial_dir(run_dir)
    unfinished = (partial / CHECKPOINT_NPZ).exists()
    if resume:
        if run_dir.exists() and not unfinished:
            raise FileExistsError(f"{run_dir}: this run already finished; nothing to resume")
        if not unfinished:
            raise FileNotFoundError(f"{partial}: no checkpoint to resume from (start without --resume)")
    elif (run_dir.exists() or unfinished) and not overwrite:
        which = run_dir if run_dir.exists() else partial
        raise FileExistsError(f"{which}: already exists (pass --overwrite to replace it, or --resume to continue)")


def prepare_run_dir(run_dir: Path, resume: bool) -> Path:
    """RUN.partial to train in, after check_run_dir: as it is for --resume (it holds the
    checkpoint), else new and empty (what a run that stopped before its first checkpoint left goes)."""
    partial = partial_dir(run_dir)
    if resume:
        return partial
    if partial.exists():
        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    return partial


def discard_unless_checkpointed(partial: Path) -> bool:
    """Remove a partial directory that holds no checkpoint (a run that stopped before its
    first one); whether it was removed."""
    if partial.is_dir() and not (partial / CHECKPOINT_NPZ).exists():
        shutil.rmtree(partial, ignore_errors=True)
        return True
    return False


def finish_run_dir(partial: Path, run_dir: Path) -> list[str]:
    """Swap the finished partial directory into place, keeping what else RUN held; the names kept.

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
        for name in os.listdir(partial):  # what an interrupted finish had carried over
            if name not in (*RUN_FILES, CHECKPOINT_NPZ):
                _remove(partial / name)
        for name in kept:
            _link_tree(run_dir / name, partial / name)
        replace_directory(partial, run_dir)
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
    partial = partial_dir(run_dir)
    if not (partial / CHECKPOINT_NPZ).is_file():
        return e
    return WriteFailed(e.errno, f"{e}; the last good checkpoint is kept in {partial}: then train --resume")


def model_meta(
    config: TrainConfig, feature: str, data_path: str, final: dict | None, spark_version: str | None
) -> dict:
    """model.json's content: the network, how its inputs are scaled, the resolved config, the data, the scores."""
    hidden = len(config.layer_sizes) - 2
    return {
        "layer_sizes": list(config.layer_sizes),
        "activations": ["relu"] * hidden + ["softmax"],
        # an `image` column's bytes are divided by 255 before the first layer; `features` are used as given
        "feature_kind": FeatureKind(feature).value,
        "input_scaling": "image_bytes / 255" if FeatureKind(feature) is FeatureKind.IMAGE else "none",
        "config": config.to_dict(),
        "local_learning_rate": local_learning_rate(config),
        # resolved: `report` and `evaluate` find it from any directory
        "data": {
            "path": data_path if "://" in data_path else os.path.abspath(data_path),
            "metadata": read_metadata(data_path),
        },
        "metrics": public_scores(final),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "spark": spark_version},
    }


def public_scores(final: dict | None) -> dict | None:
    """The scores model.json and metrics.json keep (not the per-class lists)."""
    return {k: final[k] for k in ("examples", "accuracy", "precision", "recall", "f1")} if final else None


def write_outputs(
    partial: Path, params: Params, meta: dict, metrics: dict, final: dict | None, counts: np.ndarray | None
) -> None:
    """model.npz, model.json, metrics.json, evaluation.txt and .json, each written atomically
    (the evaluation files only where there was a test set: final and counts not None)."""
    save_model(partial, params, meta)
    atomic_write_json(partial / METRICS_JSON, metrics)
    if counts is not None and final is not None:
        atomic_write_bytes(partial / EVALUATION_TXT, (stats_text(counts) + "\n").encode())
        atomic_write_json(partial / EVALUATION_JSON, {**final, "confusion": counts.tolist()})
