"""MLPClassifier.fit's tracking, like MLflow's autolog: where an MLflow run is active in the
calling thread, fit logs into it what `train --mlflow` logs (params, epochs, scores, artifacts,
the pyfunc model) and the fitted MLPClassificationModel through mlflow.spark. It never starts a
run of its own unless `autolog(start_run=True)` asked; `autolog(disable=True)` turns it off.
Without an active run fit does not even import MLflow.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from dist_mnist.driver.tracker import Guarded, one_line

_log = logging.getLogger(__name__)
FIT_RUN_NAME = "MLPClassifier.fit"


@dataclass
class _Settings:
    disable: bool = False
    start_run: bool = False
    experiment: str | None = None


SETTINGS = _Settings()


def autolog(disable: bool = False, start_run: bool = False, experiment: str | None = None) -> None:
    """How MLPClassifier.fit tracks: off (disable), into the active MLflow run (the default), or
    also in a run of its own, named MLPClassifier.fit, where none is active (start_run; the
    store as `train --mlflow` finds it, the experiment `experiment` or dist-mnist)."""
    SETTINGS.disable, SETTINGS.start_run, SETTINGS.experiment = disable, start_run, experiment


@contextmanager
def fit_tracking() -> Iterator[Guarded | None]:
    """The tracker for one fit (None: nothing to log to); a run this opened ends with the block,
    FINISHED, FAILED or KILLED (Ctrl-C)."""
    mlflow = sys.modules.get("mlflow")  # a run can only be active where MLflow was imported
    if SETTINGS.disable or (mlflow is None and not SETTINGS.start_run):
        yield None
        return
    from dist_mnist.tracking.mlflow_tracker import MLflowTracker, quiet

    tracker = MLflowTracker(SETTINGS.experiment)
    if tracker.mlflow.active_run() is not None:
        yield Guarded(tracker)
        return
    if not SETTINGS.start_run:
        yield None
        return
    try:
        with quiet():
            tracker.log = _log.info
            tracker.open_store()
            tracker.mlflow.start_run(experiment_id=tracker.experiment_id(), run_name=FIT_RUN_NAME)
    except Exception as e:  # noqa: BLE001 - the store is unreachable: fit goes on untracked
        _log.warning("warning: %s failed; fit goes on untracked: %s", tracker.name, one_line(e))
        yield None
        return
    status = "FINISHED"
    try:
        yield Guarded(tracker)
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    except BaseException:
        status = "FAILED"
        raise
    finally:
        try:
            with quiet():
                tracker.mlflow.end_run(status)
        except Exception as e:  # noqa: BLE001 - as any tracking failure
            _log.warning("warning: %s could not end its run: %s", tracker.name, one_line(e))
