"""Experiment tracking: what the driver tells a tracker about a run, kept from ever failing it.

Tracker       the four calls the driver makes (start, epoch, finish, fail); this one does nothing
Guarded       a tracker whose first exception is one warning line, after which it is off
facts.py      what is logged, as plain values: the store's URI, params, tags, final metrics
mlflow_tracker.py  MLflowTracker (the `mlflow` extra, imported only when tracking is asked for)
model.py      the run's model as MLflow models (pyfunc from code: pyfunc_model.py; ONNX; Spark)
fit.py        MLPClassifier.fit's tracker: the active MLflow run's, like autolog

Nothing here imports MLflow: a user without the extra never loads it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dist_mnist.config import TrainConfig

if TYPE_CHECKING:
    from dist_mnist.driver.finish import TrainResult

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunStart:
    """What a tracker learns when a run starts (or resumes): the resolved config and the plan's facts."""

    config: TrainConfig  # resolved: workers chosen
    run_dir: Path
    data_path: str
    data_metadata: dict  # DATA/metadata.json ({} without one): checksums, rows, seed
    rounds_per_epoch: int
    train_rows: int
    test_rows: int
    feature: str  # "image" (bytes) or "features" (floats)
    spark_version: str | None
    resumed_run_id: str | None = None  # the tracked run a resumed checkpoint names
    history: list[dict] = field(default_factory=list)  # the epochs finished before this process


class Tracker:
    """What the driver tells a tracker; every call is a no-op here."""

    name = "tracking"  # for messages
    enabled = False  # whether it records anything (the driver then times its start as a phase)

    def start(self, run: RunStart, log: Callable[[str], None]) -> str | None:
        """The run begins or resumes; the tracker's run id, to keep in the checkpoint (or None)."""
        return None

    def epoch(self, record: dict) -> None:
        """An epoch's record once complete: epoch, train_loss, samples_per_second, wall_seconds, test_accuracy."""

    def finish(self, result: TrainResult) -> None:
        """The run finished and RUN is in place: scores, artifacts, the model."""

    def fail(self, error: BaseException) -> None:
        """The run ended with `error` (KeyboardInterrupt: interrupted)."""

    def abandon(self) -> None:
        """One of the calls above failed: close what can be closed (best effort; never raises)."""


class Guarded(Tracker):
    """A tracker that can never fail a run: its first exception is one warning line (logging,
    so a CLI shows it on stderr and a notebook where its logging says), then it is off."""

    def __init__(self, inner: Tracker) -> None:
        self.inner: Tracker | None = inner
        self.name = getattr(inner, "name", "tracking")

    @property
    def enabled(self) -> bool:  # type: ignore[override]
        return self.inner is not None and self.inner.enabled

    def call(self, method: str, *args):
        """The tracker's `method` (any it has), guarded: None once the tracker is off."""
        if self.inner is None:
            return None
        try:
            return getattr(self.inner, method)(*args)
        except Exception as e:  # noqa: BLE001 - any tracking failure; the training goes on
            inner, self.inner = self.inner, None
            _log.warning("warning: %s failed and is off for the rest of this run: %s", self.name, one_line(e))
            with contextlib.suppress(Exception):  # abandon is best effort by contract
                inner.abandon()
            return None

    def start(self, run: RunStart, log: Callable[[str], None]) -> str | None:
        return self.call("start", run, log)

    def epoch(self, record: dict) -> None:
        self.call("epoch", record)

    def finish(self, result: TrainResult) -> None:
        self.call("finish", result)

    def fail(self, error: BaseException) -> None:
        self.call("fail", error)


def one_line(e: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0][:300]}" if text else type(e).__name__


def default_tracker(config: TrainConfig) -> Tracker:
    """MLflow's tracker where the config asks for tracking (RuntimeError without the extra), else none."""
    if not config.tracking:
        return Tracker()
    from dist_mnist.tracking.mlflow_tracker import MLflowTracker

    return MLflowTracker()
