"""What the driver tells an experiment tracker about a run, kept from ever failing it.

Tracker          the calls the driver makes (start, epoch, finish, fail); this one does nothing
Guarded          a tracker whose first exception is one warning line, after which it is off
default_tracker  MLflow's (dist_mnist.tracking, the `mlflow` extra) where the config asks for it

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
SETTLE_SECONDS = 30.0  # at a run's end, how long a failed tracker may take to close what it left open


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

    def abandon(self, seconds: float = 0.0) -> bool:
        """One of the calls above failed: close what can be closed, trying for up to `seconds`
        (best effort; never raises); whether it is closed (True: nothing was open)."""
        return True


class Guarded(Tracker):
    """A tracker that can never fail a run: its first exception is one warning line (logging,
    so a CLI shows it on stderr and a notebook where its logging says), then it is off."""

    def __init__(self, inner: Tracker) -> None:
        self.inner: Tracker | None = inner
        self.name = getattr(inner, "name", "tracking")
        self.failed: Tracker | None = None  # the inner tracker once it failed, until settle() closed it

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
                if inner.abandon() is False:  # (a tracker returning nothing closed what it could)
                    self.failed = inner  # settle() tries again, when the run ends
            return None

    def settle(self, seconds: float = SETTLE_SECONDS) -> None:
        """At the run's end: close what a failed tracker left open (its run ends FAILED once its
        store answers again), trying for up to `seconds`; one line says how it ended."""
        failed, self.failed = self.failed, None
        if failed is None:
            return
        closed = False
        with contextlib.suppress(Exception):
            closed = failed.abandon(seconds) is not False
        if closed:
            _log.warning("%s: the run it had started is marked FAILED, now that its store answers", self.name)
        else:
            _log.warning("warning: %s: its store did not answer in %g s; its run is left RUNNING", self.name, seconds)

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
