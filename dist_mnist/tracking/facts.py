"""What a tracker records about a run, as plain values: where the store is, the params, tags
and final metrics. No MLflow here (unit-tested without it).
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np

from dist_mnist import __version__
from dist_mnist.driver.tracker import RunStart

STORE_FILE, ARTIFACT_DIR = "mlruns.db", "mlartifacts"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else the SQLite store mlruns.db in the current directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd().resolve() / STORE_FILE}"


def sqlite_file(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI (None for other stores)."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri[len("sqlite:///") :].split("?", 1)[0])


def artifact_location(uri: str) -> str | None:
    """Where a new experiment's artifacts go: mlartifacts/ beside a SQLite store's file; else
    the store's own default (a server's artifact root)."""
    db = sqlite_file(uri)
    return None if db is None else (db.resolve().parent / ARTIFACT_DIR).as_uri()


def git_commit() -> str | None:
    """The commit of the checkout this package runs from (an editable install), or None."""
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / ".git").exists():
        return None
    try:
        out = subprocess.run(
            ["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip() if out.returncode == 0 else ""
    return commit or None


def params_of(run: RunStart) -> dict[str, str]:
    """The resolved config and the plan's facts as MLflow params (strings)."""
    params = {k: str(list(v) if isinstance(v, tuple) else v) for k, v in run.config.to_dict().items()}
    params.update(
        rounds_per_epoch=str(run.rounds_per_epoch),
        train_rows=str(run.train_rows),
        test_rows=str(run.test_rows),
        feature=run.feature,
    )
    return params


def tags_of(run: RunStart) -> dict[str, str]:
    """Versions, the commit where known, the data's path and checksums (DATA/metadata.json)."""
    meta = run.data_metadata
    tags = {
        "dist_mnist.version": __version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "spark_version": run.spark_version or "none (in-process transport)",
        "data.path": run.data_path if "://" in run.data_path else os.path.abspath(run.data_path),
    }
    tags.update({f"data.sha256.{stem}": digest for stem, digest in (meta.get("sha256_uncompressed") or {}).items()})
    for key in ("schema_version", "seed", "partitions"):
        if key in meta:
            tags[f"data.{key}"] = str(meta[key])
    commit = git_commit()
    if commit:
        tags["mlflow.source.git.commit"] = commit
    return tags


def final_metrics(result) -> dict[str, float]:
    """The final scores, per class too, and how the time went (phases, a round's parts)."""
    out: dict[str, float] = {}
    s = result.scores
    if s is not None:
        out.update({f"final_{k}": float(s[k]) for k in ("accuracy", "precision", "recall", "f1")})
        for k, values in s["per_class"].items():
            out.update({f"{k}_class_{c}": float(v) for c, v in enumerate(values) if v is not None})
    rounds = result.metrics.get("rounds", {})
    out.update({f"phase_{k}_seconds": float(v) for k, v in (rounds.get("phases_seconds") or {}).items()})
    for k, v in rounds.items():
        if isinstance(v, dict) and isinstance(v.get("mean_ms"), (int, float)):
            out[f"round_{k}_mean_ms"] = float(v["mean_ms"])
    if isinstance(rounds.get("rounds"), int):
        out["rounds"] = float(rounds["rounds"])
    return out
