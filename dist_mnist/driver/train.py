"""train(): prepare the run, open a transport, run the rounds, finish. Spark only at the edges:
a session (classic or Spark Connect) picks the transport and the default worker count; with
no session the workers run in this process (transport "inprocess").
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from dist_mnist.config import TrainConfig
from dist_mnist.data.ingest import read_metadata
from dist_mnist.driver.finish import TrainResult, final_counts, finish
from dist_mnist.driver.loop import EpochListener, run_rounds
from dist_mnist.driver.prepare import Prepared, prepare
from dist_mnist.driver.progress import GracefulStop, Interrupted, Progress, nothing_written
from dist_mnist.driver.tracker import Guarded, RunStart, Tracker, default_tracker
from dist_mnist.hints import Log
from dist_mnist.modes import local_learning_rate
from dist_mnist.rounds import Plan
from dist_mnist.transport import InProcessTransport, Transport

if TYPE_CHECKING:
    from dist_mnist.hints import SparkSession


def train(
    spark: SparkSession | None,
    config: TrainConfig,
    data_dir: str,
    run_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    log: Log | None = None,
    require_test: bool = True,
    on_epoch: EpochListener | None = None,
    tracker: Tracker | None = None,
) -> TrainResult:
    """Train on DATA/train, evaluate on DATA/test, write RUN/; the TrainResult.

    spark: a SparkSession, or None with transport "inprocess" (no Spark at all). With
    require_test False, DATA/test may be missing or empty: the run then has no test scores.
    """
    with prepare(config, data_dir, run_dir, resume, overwrite, require_test) as run:
        return train_prepared(spark, run, log, on_epoch, tracker)


def train_prepared(
    spark: SparkSession | None,
    run: Prepared,
    log: Log | None = None,
    on_epoch: EpochListener | None = None,
    tracker: Tracker | None = None,
) -> TrainResult:
    """Train a prepared run (prepare() needs no Spark: the CLI prepares before Spark starts).

    tracker: told of the run's start, epochs and end (dist_mnist.tracking); by default MLflow's
    where config.tracking is set. Its failures are one warning line, never the run's.
    """
    log = log or partial(print, flush=True)  # flushed: stdout is a pipe under spark-submit and CI
    tracker = tracker if isinstance(tracker, Guarded) else Guarded(tracker or default_tracker(run.config))
    try:
        result = _train_prepared(spark, run, log, listeners(on_epoch, tracker.epoch), tracker)
    except BaseException as e:
        tracker.fail(e)  # FAILED, or KILLED for Ctrl-C (where the tracker had started)
        tracker.settle()
        raise
    try:
        tracker.finish(result)  # ends its run itself, KILLED where a Ctrl-C lands in it
    except KeyboardInterrupt:
        written = f"interrupted during {tracker.name}; the model is written to {run.run_dir}"
        raise Interrupted(written, None, started=True) from None
    tracker.settle()  # a tracker that failed meanwhile: its run ended FAILED once the store answers
    return result


def _train_prepared(
    spark: SparkSession | None, run: Prepared, log: Log, on_epoch: EpochListener, tracker: Guarded
) -> TrainResult:
    if spark is None and run.config.transport != "inprocess":
        raise ValueError(f"transport {run.config.transport!r} needs a SparkSession; without one use 'inprocess'")
    plan = run.plan(default_workers(spark))
    total = plan.rounds_per_epoch * plan.config.epochs
    progress = Progress(
        min(total, plan.config.max_rounds or total),
        plan.config.log_every_rounds or max(1, plan.rounds_per_epoch // 10),
        log,
    )
    if run.resumed:
        pos = run.state.pos
        log(
            f"resuming {run.partial} at epoch {pos.epoch + 1} round {pos.round_in_epoch + 1} "
            f"(round {pos.global_round} overall)"
        )
    log(headline(plan, spark))
    run.phases.mark("prepare")
    if tracker.enabled:  # the tracker's run id goes into every checkpoint
        run.state.tracking_run_id = tracker.start(run_start(run, plan, spark), log) or run.state.tracking_run_id
        run.phases.mark("tracking_start")
    notices = ["Ctrl-C: stopping once the workers have started (press again to abort now)"]
    with GracefulStop(lambda: progress.line(notices[-1])) as stop:
        with start_transport(spark, plan, run, stop, log) as transport:
            run.phases.mark("transport_start")
            notices.append("Ctrl-C: stopping after this round (press again to abort now)")
            pending = run_rounds(plan, run, transport, stop, progress, on_epoch)
            run.phases.mark("rounds")
            counts = final_counts(plan, run, transport)
        facts = transport.summary()
    report_channel(facts, log)
    return finish(run, plan, counts, pending, facts, spark.version if spark is not None else None, log, on_epoch)


def run_start(run: Prepared, plan: Plan, spark: SparkSession | None) -> RunStart:
    """What a tracker learns as the run starts: the resolved config, the plan and the data."""
    return RunStart(
        plan.config,
        run.run_dir,
        run.data_path,
        read_metadata(run.data_path),
        plan.rounds_per_epoch,
        run.train_split.n_rows,
        run.test_split.n_rows,
        run.train_split.feature,
        spark.version if spark is not None else None,
        run.state.tracking_run_id if run.resumed else None,
        list(run.state.pos.history),
    )


def listeners(*fns: EpochListener | None) -> EpochListener:
    """One epoch listener calling each of `fns` that is set, in order."""
    chosen = [f for f in fns if f is not None]

    def call(record: dict) -> None:
        for f in chosen:
            f(record)

    return call


def default_workers(spark: SparkSession | None) -> int:
    """W when the config says 0: Spark's default parallelism (1 without Spark)."""
    if spark is None:
        return 1
    from dist_mnist.spark.session import default_parallelism

    return default_parallelism(spark)


def start_transport(spark: SparkSession | None, plan: Plan, run: Prepared, stop: GracefulStop, log: Log) -> Transport:
    """The config's transport, started; a Ctrl-C while it starts ends the run before its first round."""
    not_started = (
        Interrupted(
            f"interrupted before training resumed; {run.partial} is unchanged (resume with --resume)",
            run.partial,
        )
        if run.resumed
        else nothing_written("training started")
    )
    try:
        if spark is None:
            transport: Transport = InProcessTransport(plan)
        else:
            from dist_mnist.spark.transport_choice import open_transport

            transport = open_transport(spark, plan, log)
    except KeyboardInterrupt:
        raise not_started from None
    if stop.requested:
        transport.close()
        raise not_started
    return transport


def headline(plan: Plan, spark: SparkSession | None) -> str:
    """The run's first line: network, mode, workers, rounds, batch, where."""
    c = plan.config
    local_lr = f", local learning rate {local_learning_rate(c):g}" if plan.mode.local_steps else ""
    if spark is None:
        where = ", in process"
    else:  # a classic session's SparkContext says, without starting the SQL engine
        from dist_mnist.spark.cluster import Cluster

        where = f", master {Cluster(spark).master}"
    return (
        f"training {list(c.layer_sizes)} in {c.mode} mode on {c.workers} workers: "
        f"{c.epochs} epochs x {plan.rounds_per_epoch} rounds, batch {c.batch_size}{local_lr}{where}"
    )


def report_channel(facts: dict, log: Log) -> None:
    """Say once if the round channel dropped messages (refused connections are told as they happen)."""
    dropped = facts.get("dropped_messages") or {}
    if dropped:
        log(
            f"channel: dropped {sum(dropped.values()):,} message(s) that did not answer the round in flight ("
            + ", ".join(f"{n:,} {reason}" for reason, n in sorted(dropped.items()))
            + ")"
        )
