"""MLflowTracker: a run's config, epochs, scores, artifacts and model in MLflow.

Where: MLFLOW_TRACKING_URI when set, else a SQLite store in the current directory
(sqlite:///<cwd>/mlruns.db); a SQLite store's new experiments keep their artifacts beside its
file, in mlartifacts/. No server is needed. With an MLflow run already active (a notebook's
`with mlflow.start_run():`, MLPClassifier.fit) the tracker logs into it and leaves ending it to
its owner; otherwise it starts its own run (named after RUN), continued by --resume, and ends
it FINISHED, FAILED or KILLED (Ctrl-C).
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from dist_mnist.driver.runs import EVALUATION_TXT, METRICS_JSON, MODEL_JSON
from dist_mnist.driver.tracker import RunStart, Tracker, one_line
from dist_mnist.tracking import model as models
from dist_mnist.tracking.facts import artifact_location, final_metrics, params_of, sqlite_file, tags_of, tracking_uri

if TYPE_CHECKING:
    from mlflow import MlflowClient

DEFAULT_EXPERIMENT = "dist-mnist"
EPOCH_METRICS = ("train_loss", "test_accuracy", "samples_per_second", "wall_seconds")  # step = epoch
# MLflow's defaults for an unreachable server are 7 retries and 120 s a request (minutes before
# the warning); where the user has not set them, a tracked run gives up after seconds
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}
QUIET_ENV = {"MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false", **HTTP_DEFAULTS}
# a store that fails (locked, gone) is one warning line of ours: not MLflow's and SQLAlchemy's
# dumps of the exception and its SQL on every call
QUIET_LOGGERS = {
    "mlflow": logging.WARNING,
    "alembic": logging.WARNING,
    "mlflow.store.db.utils": logging.CRITICAL,
    "sqlalchemy": logging.CRITICAL,
}


def import_mlflow():
    """The mlflow module, or a one-line RuntimeError saying how to install it."""
    try:
        import mlflow
    except ImportError:
        raise RuntimeError(
            "tracking needs MLflow: pip install 'dist-mnist[mlflow]' (or leave out --mlflow / tracking = true)"
        ) from None
    return mlflow


@contextmanager
def quiet() -> Iterator[None]:
    """MLflow's INFO lines (store creation, migrations), progress bars and warnings kept off the
    run's output, and the HTTP defaults above; all restored after."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    saved = {k: os.environ.get(k) for k in QUIET_ENV}
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), QUIET_LOGGERS[logger.name]))
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        for key, before in saved.items():
            if before is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = before


class MLflowTracker(Tracker):
    """Logs a run to MLflow (see the module's docstring for where)."""

    name, enabled = "MLflow tracking", True

    def __init__(self, experiment: str | None = None, uri: str | None = None) -> None:
        self.mlflow = import_mlflow()
        self.uri = uri or tracking_uri()
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        self.owns = False  # whether this tracker started the run (and so ends it)
        self.run_id: str | None = None
        self.client: MlflowClient | None = None  # set by start() or open_store()
        self.logged: set[tuple[str, int]] = set()  # (metric, epoch) already in the run
        self.log: Callable[[str], None] = print

    def start(self, run: RunStart, log: Callable[[str], None]) -> str:
        mlflow, self.log = self.mlflow, log
        with quiet():
            active = mlflow.active_run()
            if active is not None:
                self.run_id, self.client = active.info.run_id, mlflow.MlflowClient()
                self.uri = mlflow.get_tracking_uri()
            else:
                self._start_own(run)
            try:
                run_id = self._log_start(run)
            except BaseException:
                self.abandon()
                raise
        return run_id

    def open_store(self) -> None:
        """Point MLflow at this tracker's store (made on first use)."""
        db = sqlite_file(self.uri)
        if db is not None and not db.exists():
            self.log(f"MLflow: creating the store {self.uri} (first use: a few seconds)")
        self.mlflow.set_tracking_uri(self.uri)
        self.client = self.mlflow.MlflowClient(self.uri)

    def _store(self) -> MlflowClient:
        """The store's client (start() or open_store() made it)."""
        assert self.client is not None, "open_store() first"
        return self.client

    def _logging_to(self) -> tuple[MlflowClient, str]:
        """The store's client and the run this tracker logs to (start() set them)."""
        assert self.run_id is not None, "start() first"
        return self._store(), self.run_id

    def experiment_id(self) -> str:
        """The experiment's id, created where it is missing (a SQLite store's with mlartifacts/ beside it)."""
        experiment = self._store().get_experiment_by_name(self.experiment)
        if experiment is not None:
            return experiment.experiment_id
        return self._store().create_experiment(self.experiment, artifact_location(self.uri))

    def _start_own(self, run: RunStart) -> None:
        self.open_store()
        resumed = self._continuable(run.resumed_run_id)
        if resumed is not None:
            active = self.mlflow.start_run(run_id=resumed)
        else:
            active = self.mlflow.start_run(experiment_id=self.experiment_id(), run_name=run.run_dir.name)
        self.owns, self.run_id = True, active.info.run_id

    def _continuable(self, run_id: str | None) -> str | None:
        """The resumed checkpoint's run, where this store still has it."""
        if run_id is None:
            return None
        try:
            found = self._store().get_run(run_id)
        except self.mlflow.exceptions.MlflowException:
            found = None
        if found is None or found.info.lifecycle_stage != "active":
            self.log(f"MLflow: run {run_id} of the checkpoint is not in {self.uri}; starting a new run")
            return None
        return run_id

    def _log_start(self, run: RunStart) -> str:
        """Params (those the run has not yet: a resumed run keeps its first values), tags, and
        the epochs finished before this process that the run has not seen; the run's id."""
        client, run_id = self._logging_to()
        existing = client.get_run(run_id).data
        params = {k: v for k, v in params_of(run).items() if k not in existing.params}
        tags = {k: v for k, v in tags_of(run).items() if k not in existing.tags}
        self._batch(params=params, tags=tags)
        for key in EPOCH_METRICS if run.history else ():
            self.logged.update((key, m.step) for m in client.get_metric_history(run_id, key))
        for record in run.history:
            self.epoch(record)
        verb = "continuing" if run.resumed_run_id == run_id else "logging to"
        self.log(f"MLflow: {verb} run {run_id} at {self.uri}")
        return run_id

    def _batch(self, metrics: dict | None = None, step: int = 0, params: dict | None = None, tags=None) -> None:
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.utils.time import get_current_time_millis

        now = get_current_time_millis()
        client, run_id = self._logging_to()
        client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, step) for k, v in (metrics or {}).items()],
            params=[Param(k, v) for k, v in (params or {}).items()],
            tags=[RunTag(k, v) for k, v in (tags or {}).items()],
        )

    def epoch(self, record: dict) -> None:
        step = int(record["epoch"])
        metrics = {k: record[k] for k in EPOCH_METRICS if k in record and (k, step) not in self.logged}
        if metrics:
            with quiet():
                self._batch(metrics, step)
            self.logged.update((k, step) for k in metrics)

    def finish(self, result) -> None:
        try:
            with quiet():
                logged = self._log_finish(result)
        except BaseException as e:  # the run is written; its MLflow run ends FAILED (KILLED for Ctrl-C)
            self.fail(e)
            raise
        self.log(f"MLflow: logged to run {self.run_id} at {self.uri}: {', '.join(logged)}")
        if self.owns:
            with quiet():
                self.mlflow.end_run("FINISHED")

    def _log_finish(self, result) -> list[str]:
        """Scores, transport, artifacts, models; what was logged, for the closing line."""
        run_dir = Path(result.run_dir)
        client, run_id = self._logging_to()
        self._batch(final_metrics(result), tags={"transport": str(result.metrics.get("rounds", {}).get("transport"))})
        logged = ["params", f"{len(result.history)} epochs of metrics", "final scores"]
        for name in (MODEL_JSON, METRICS_JSON, EVALUATION_TXT):
            if (run_dir / name).is_file():
                client.log_artifact(run_id, str(run_dir / name))
                logged.append(name)
        logged += self._log_report(run_dir)
        if models.log_onnx(client, run_id, result.params, result.model_meta):
            logged.append(f"{models.ONNX_DIR}/model.onnx")
        active = self.mlflow.active_run()  # MLflow's fluent log_model logs into the active run
        if active is None or active.info.run_id != self.run_id:
            raise RuntimeError(f"MLflow's active run is no longer {self.run_id}; the model was not logged")
        models.log_pyfunc(run_dir, result.model_meta)
        logged.append(f"pyfunc model runs:/{self.run_id}/{models.PYFUNC_NAME}")
        return logged

    def _log_report(self, run_dir: Path) -> list[str]:
        """The report's PNGs and page (report/), where matplotlib and the test split are at hand."""
        from dist_mnist.outputs.report import write_report

        with tempfile.TemporaryDirectory(prefix="dist-mnist-report-") as tmp:
            try:
                write_report(run_dir, log=lambda *_: None, out=tmp)
            except (RuntimeError, ValueError, OSError) as e:  # no matplotlib, no test split, data moved
                self.log(f"MLflow: no report logged ({one_line(e)})")
                return []
            client, run_id = self._logging_to()
            client.log_artifacts(run_id, tmp, "report")
        return ["report/"]

    def fail(self, error: BaseException) -> None:
        if self.run_id is None:  # failed before the run started: nothing to end
            return
        status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
        with quiet():
            try:
                self._batch(tags={"dist_mnist.error": one_line(error)})
            finally:
                if self.owns:
                    self.mlflow.end_run(status)

    def log_fitted(self, model) -> None:
        """MLPClassifier.fit's model, through MLflow's Spark flavour, into the run this tracker logged to."""
        if self.run_id is None:
            return
        with quiet():
            active = self.mlflow.active_run()
            if active is None or active.info.run_id != self.run_id:
                raise RuntimeError(f"MLflow's active run is no longer {self.run_id}; the Spark model was not logged")
            uri = models.log_spark_model(model)
        self.log(f"MLflow: logged the fitted MLPClassificationModel as {uri} (mlflow.spark.load_model)")

    def abandon(self, seconds: float = 0.0) -> bool:
        """After a tracking failure: end our run as FAILED, trying for up to `seconds` while the
        store does not answer (a locked SQLite file, say); whether it is ended."""
        if not self.owns or self.run_id is None:
            return True
        deadline = time.monotonic() + seconds
        while True:
            try:
                with quiet():
                    self._store().set_terminated(self.run_id, "FAILED")
                break
            except Exception:  # noqa: BLE001 - the store is the problem; the warning said so
                if time.monotonic() >= deadline:
                    return False
                time.sleep(1.0)
        with contextlib.suppress(Exception), quiet():  # the fluent API's own record of the active run
            self.mlflow.end_run("FAILED")
        return True
