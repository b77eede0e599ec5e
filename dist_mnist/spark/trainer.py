"""The driver's round loop: send the parameters, let every worker compute, combine, update once.

The model never leaves NumPy on the driver and the data never reaches it: the driver only
sees sums the size of the parameters. How a round travels is a Transport (see
dist_mnist.transport); this loop does not know which one runs.
"""

from __future__ import annotations

import dataclasses
import math
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from dist_mnist import schedule
from dist_mnist.artifacts import CHECKPOINT_NPZ, WriteFailed, save_checkpoint
from dist_mnist.config import TrainConfig, config_from_dict, has_outer_step, local_learning_rate, with_saved_choices
from dist_mnist.data.ingest import read_metadata
from dist_mnist.metrics import scores
from dist_mnist.nn.flat import layout_of
from dist_mnist.nn.model import Params, init_params
from dist_mnist.nn.updaters import Nesterovs, make_updater, zeros_like
from dist_mnist.rounds import Plan, RoundResult, RoundSpec, apply_round, round_input
from dist_mnist.paths import run_lock
from dist_mnist.runs import (
    check_rounds,
    check_run_paths,
    discard_unless_checkpointed,
    finish_run_dir,
    prepare_run_dir,
    with_resume_hint,
    write_outputs,
)
from dist_mnist.shards import plan_shards
from dist_mnist.spark.dataset import SplitFiles, describe_split
from dist_mnist.spark.progress import GracefulStop, Progress


class Diverged(RuntimeError):
    """The loss became NaN or inf."""


@dataclass
class Position:
    """Where training is; saved in every checkpoint, so a resumed run continues exactly."""

    epoch: int = 0  # epochs finished
    round_in_epoch: int = 0  # rounds of the current epoch finished
    global_round: int = 0
    epoch_loss: float = 0.0  # the current epoch's running loss sum, examples and seconds
    epoch_seen: int = 0
    epoch_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)  # one entry per finished epoch
    timings: dict = field(default_factory=lambda: {"rounds": 0})


@dataclass
class TrainState:
    """What a checkpoint holds: parameters, updater state, outer velocity and the position."""

    params: Params
    state: Params
    outer_v: Params
    pos: Position

    def save(self, run_dir: Path, config: TrainConfig) -> None:
        """One checkpoint file: arrays and counters together, written atomically."""
        arrays = {**self.state, **{f"outer/{k}": v for k, v in self.outer_v.items()}}
        save_checkpoint(run_dir, self.params, arrays, {**dataclasses.asdict(self.pos), "config": config.to_dict()})

    @classmethod
    def load(cls, checkpoint) -> TrainState:
        params, saved, meta = checkpoint
        state = {k: v for k, v in saved.items() if not k.startswith("outer/")}
        outer_v = {k[len("outer/") :]: v for k, v in saved.items() if k.startswith("outer/")}
        return cls(params, state, outer_v, Position(**{f.name: meta[f.name] for f in dataclasses.fields(Position)}))


def resolve(config: TrainConfig, default_workers: int) -> TrainConfig:
    """The config as it will run: every 0-means-auto setting replaced by its choice."""
    return dataclasses.replace(config, workers=config.workers or max(1, default_workers))


def check_layers(config: TrainConfig, metadata: dict, where: str) -> None:
    """The network's inputs and classes against what DATA/metadata.json says the data holds
    (where it says: a dataset without it is checked row by row on the workers)."""
    n_in, n_classes = metadata.get("n_in"), metadata.get("n_classes")
    sizes = list(config.layer_sizes)
    if n_in is not None and sizes[0] != n_in:
        raise ValueError(f"layer_sizes {sizes} starts with {sizes[0]} inputs but {where} has {n_in} features a row")
    if n_classes is not None and sizes[-1] < n_classes:
        raise ValueError(f"layer_sizes {sizes} ends with {sizes[-1]} classes but {where} has labels 0-{n_classes - 1}")


def make_plan(config: TrainConfig, train_split: SplitFiles, test_split: SplitFiles) -> Plan:
    """Shards for config.workers workers over both splits, whatever their part files."""
    if config.workers > train_split.n_rows:
        raise ValueError(f"workers {config.workers} exceeds the {train_split.n_rows} training rows")
    layout = layout_of(init_params(list(config.layer_sizes), config.seed))
    return Plan(
        config,
        plan_shards(train_split.files, train_split.rows, config.workers),
        plan_shards(test_split.files, test_split.rows, config.workers),
        layout,
        scope=uuid.uuid4().hex[:12],
    )


def rounds_per_epoch(plan: Plan) -> int:
    """Sync: one round a global minibatch; average: k local steps of the largest shard a round."""
    c = plan.config
    if c.mode == "sync":
        return schedule.n_batches(plan.n_train, c.batch_size)
    return schedule.rounds_per_epoch_average([s.n for s in plan.train], c.batch_size, c.averaging_frequency)


def train(
    sc,
    config: TrainConfig,
    data_dir: str,
    run_dir: str,
    resume: bool = False,
    overwrite: bool = False,
    log=None,
    require_test: bool = True,
) -> dict | None:
    """Train on DATA/train, evaluate on DATA/test, write RUN/; return the final scores.

    sc may be None with transport "inprocess" (no Spark at all). With require_test False,
    DATA/test may be missing or empty: the run then has no test scores (returns None).
    RUN must lie apart from DATA; it is locked for the run (RunInUse if another process has it).
    """
    check_run_paths(run_dir, data_dir)
    with run_lock(run_dir):
        try:
            return _run(sc, config, data_dir, run_dir, resume, overwrite, log, require_test)
        except WriteFailed as e:  # disk full, no file handles: the last checkpoint is whole
            raise with_resume_hint(e, Path(run_dir)) from e


def _run(
    sc, config: TrainConfig, data_dir: str, run_dir: str, resume: bool, overwrite: bool, log, require_test: bool
) -> dict | None:
    """train() under its lock: the staging directory, removed again when no checkpoint was written."""
    log = log or partial(print, flush=True)  # flushed: stdout is a pipe under spark-submit and CI
    if sc is None and config.transport != "inprocess":
        raise ValueError(f"transport {config.transport!r} needs a SparkContext; without one use transport 'inprocess'")
    t_start = time.perf_counter()
    run_dir, data_path = Path(run_dir), str(data_dir).rstrip("/")
    staging, checkpoint = prepare_run_dir(run_dir, config, resume, overwrite)
    try:
        return _train(sc, config, data_path, run_dir, staging, checkpoint, log, require_test, t_start)
    except BaseException as e:
        # a run stopped before its first checkpoint leaves no RUN.partial that --resume would refuse
        if (
            discard_unless_checkpointed(staging)
            and isinstance(e, KeyboardInterrupt)
            and "nothing was written" not in str(e)
        ):
            raise KeyboardInterrupt("interrupted before the first checkpoint; nothing was written") from None
        raise


def _train(
    sc,
    config: TrainConfig,
    data_path: str,
    run_dir: Path,
    staging: Path,
    checkpoint,
    log,
    require_test: bool,
    t_start: float,
) -> dict | None:
    """train() in its staging directory: prepare, start the transport, the rounds, finish."""
    from dist_mnist.spark.transports import open_transport

    train_split = describe_split(data_path + "/train")
    test_split = describe_split(data_path + "/test", allow_empty=not require_test)
    has_test = test_split.n_rows > 0
    check_layers(config, read_metadata(data_path), data_path)
    if config.batch_size > train_split.n_rows:
        raise ValueError(f"batch_size {config.batch_size} is larger than the {train_split.n_rows} training rows")
    if checkpoint:
        config = with_saved_choices(config, config_from_dict(checkpoint[2]["config"], str(staging)))
    config = resolve(config, sc.defaultParallelism if sc is not None else 1)
    plan = make_plan(config, train_split, test_split)
    ts = TrainState.load(checkpoint) if checkpoint else new_state(config)
    if checkpoint:
        log(
            f"resuming {staging} at epoch {ts.pos.epoch + 1} round {ts.pos.round_in_epoch + 1} "
            f"(round {ts.pos.global_round} overall)"
        )
    pos = ts.pos
    row_bytes = config.layer_sizes[0] * (1 if train_split.feature == "image" else 4) + 1  # features + label
    pos.timings["data_bytes"] = (train_split.n_rows + test_split.n_rows) * row_bytes
    updater = make_updater(config.updater, config.learning_rate, config.momentum, config.l2)
    outer = Nesterovs(config.outer_learning_rate, config.outer_momentum) if ts.outer_v else None
    # the epoch whose end-of-epoch params the next round evaluates on the side
    pending_eval = len(pos.history) - 1 if pos.history and "test_accuracy" not in pos.history[-1] else None

    per_epoch = rounds_per_epoch(plan)
    if checkpoint:
        check_rounds(pos.epoch, pos.round_in_epoch, pos.global_round, per_epoch, staging / CHECKPOINT_NPZ)
    total_rounds = per_epoch * config.epochs
    if config.max_rounds:
        total_rounds = min(total_rounds, config.max_rounds)
    progress = Progress(total_rounds, config.log_every_rounds or max(1, per_epoch // 10), log)
    local_lr = f", local learning rate {local_learning_rate(config):g}" if config.mode == "average" else ""
    log(
        f"training {list(config.layer_sizes)} in {config.mode} mode on {config.workers} workers: "
        f"{config.epochs} epochs x {per_epoch} rounds, batch {config.batch_size}{local_lr}"
        + (f", master {sc.master}" if sc is not None else ", in process")
    )
    phases = {"prepare": time.perf_counter() - t_start}  # this process's wall time by phase
    t_phase = time.perf_counter()

    notices = ["Ctrl-C: stopping once the workers have started (press again to abort now)"]
    not_started = (
        "interrupted before training started; nothing was written"
        if checkpoint is None
        else f"interrupted before training resumed; {staging} is unchanged (resume with --resume)"
    )
    with GracefulStop(lambda: progress.line(notices[-1])) as stop:
        try:  # a Ctrl-C while the barrier stage starts stops before the first round
            transport = open_transport(sc, plan, log)
        except KeyboardInterrupt:
            raise KeyboardInterrupt(not_started) from None
        if stop.requested:
            transport.close()
            raise KeyboardInterrupt(not_started)
        pos.timings["transport"] = transport.name
        phases["transport_start"] = time.perf_counter() - t_phase
        t_phase = time.perf_counter()
        epoch_clock = time.perf_counter() - pos.epoch_seconds
        notices.append("Ctrl-C: stopping after this round (press again to abort now)")
        try:
            while pos.epoch < config.epochs and not (config.max_rounds and pos.global_round >= config.max_rounds):
                # 1. one round: send, compute on every worker, combine, one update
                spec = RoundSpec(pos.epoch, pos.round_in_epoch, evaluate=pending_eval is not None)
                t_round = time.perf_counter()
                result = transport.run_round(round_input(plan, ts.params, ts.state), spec)
                t_update = time.perf_counter()
                if not math.isfinite(result.loss):
                    raise Diverged(
                        f"loss became {result.loss} at epoch {pos.epoch + 1} round {pos.round_in_epoch + 1} "
                        f"(round {pos.global_round + 1} overall); lower learning_rate"
                    )
                apply_round(plan, updater, outer, ts.params, ts.state, ts.outer_v, result)
                record_timings(pos.timings, result, t_update - t_round, time.perf_counter() - t_update)
                if "first_round" not in phases:  # the workers' start and shard loads land here
                    phases["first_round"] = time.perf_counter() - t_phase
                    t_phase = time.perf_counter()
                pos.round_in_epoch, pos.global_round = pos.round_in_epoch + 1, pos.global_round + 1
                pos.epoch_loss, pos.epoch_seen = pos.epoch_loss + result.loss, pos.epoch_seen + result.n

                # 2. the side evaluation of the previous epoch's final parameters
                if pending_eval is not None:
                    accuracy = scores(result.confusion)["accuracy"]
                    pos.history[pending_eval]["test_accuracy"] = accuracy
                    progress.line(f"epoch {pending_eval + 1} test accuracy {accuracy:.4f}")
                    pending_eval = None
                elapsed = time.perf_counter() - epoch_clock
                progress.round(
                    pos.global_round,
                    pos.epoch + 1,
                    config.epochs,
                    pos.round_in_epoch,
                    per_epoch,
                    pos.epoch_loss / max(pos.epoch_seen, 1),
                    pos.epoch_seen / max(elapsed, 1e-9),
                )

                # 3. the end of an epoch, checkpoints and Ctrl-C
                if pos.round_in_epoch == per_epoch:
                    pos.history.append(
                        {
                            "epoch": pos.epoch + 1,
                            "train_loss": pos.epoch_loss / max(pos.epoch_seen, 1),
                            "wall_seconds": elapsed,
                            "samples_per_second": pos.epoch_seen / elapsed,
                            "elapsed_seconds": time.perf_counter() - t_start,
                        }
                    )
                    pending_eval = len(pos.history) - 1 if has_test else None
                    pos.epoch, pos.round_in_epoch, pos.epoch_loss, pos.epoch_seen = pos.epoch + 1, 0, 0.0, 0
                    epoch_clock = time.perf_counter()
                if pos.round_in_epoch == 0 or (
                    config.checkpoint_every_rounds and pos.global_round % config.checkpoint_every_rounds == 0
                ):
                    pos.epoch_seconds = time.perf_counter() - epoch_clock
                    ts.save(staging, config)
                if stop.requested:
                    raise KeyboardInterrupt(
                        f"stopped by Ctrl-C after round {pos.global_round} (epoch {pos.epoch + 1}); "
                        f"checkpoint saved in {staging} (resume with --resume)"
                    )
        except KeyboardInterrupt as e:
            transport.close()
            if stop.requested and str(e):
                pos.epoch_seconds = time.perf_counter() - epoch_clock
                ts.save(staging, config)
                raise
            raise KeyboardInterrupt(
                f"interrupted at epoch {pos.epoch + 1}; the last checkpoint is in {staging} (resume with --resume)"
            ) from None
        except BaseException:
            transport.close()
            raise

    phases["rounds"] = time.perf_counter() - t_phase
    t_phase = time.perf_counter()
    # the final evaluation: one evaluation-only round on the workers' test shards
    counts = final = None
    try:
        if has_test:
            counts = transport.run_round(
                round_input(plan, ts.params, ts.state), RoundSpec(pos.epoch, 0, train=False, evaluate=True)
            ).confusion
    finally:
        transport.close()
    report_channel(pos.timings, getattr(transport, "channel_counts", dict)(), log)
    phases["final_evaluation"] = time.perf_counter() - t_phase
    t_phase = time.perf_counter()
    if has_test:
        final = scores(counts)
        if pending_eval is not None:
            pos.history[pending_eval]["test_accuracy"] = final["accuracy"]
        log(
            f"final test accuracy {final['accuracy']:.4f} after {pos.global_round} rounds, "
            f"{time.perf_counter() - t_start:.1f}s"
        )
    else:
        log(f"trained {pos.global_round} rounds in {time.perf_counter() - t_start:.1f}s (no test set)")
    pos.timings["phases"] = phases
    write_outputs(
        staging,
        config,
        ts.params,
        final,
        counts,
        pos.history,
        pos.timings,
        data_path,
        sc.version if sc is not None else None,
        train_split.feature,
    )
    kept = finish_run_dir(staging, run_dir)
    if kept:
        log(
            f"kept in {run_dir} what train did not write: {', '.join(kept)} (made before this run: "
            f"remake any made from the old model, e.g. dist-mnist export)"
        )
    phases["write"] = time.perf_counter() - t_phase  # after metrics.json: printed, not saved
    log(f"phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))
    return final


def new_state(config: TrainConfig) -> TrainState:
    """Xavier-initialised parameters, zero updater state and outer velocity, position 0."""
    params = init_params(list(config.layer_sizes), config.seed)
    updater = make_updater(config.updater, config.learning_rate, config.momentum, config.l2)
    outer_v = zeros_like(params) if has_outer_step(config) else {}
    return TrainState(params, updater.init_state(params), outer_v, Position())


def report_channel(timings: dict, counts: dict, log) -> None:
    """Keep the round channel's dropped messages and refused connections for metrics.json; say
    once if any message was dropped (refused connections are told as they happen)."""
    timings.update(counts)
    dropped = counts.get("dropped_messages") or {}
    if dropped:
        log(
            f"channel: dropped {sum(dropped.values()):,} message(s) that did not answer the round in flight ("
            + ", ".join(f"{n:,} {reason}" for reason, n in sorted(dropped.items()))
            + ")"
        )


def record_timings(timings: dict, result: RoundResult, wall: float, update: float) -> None:
    """Add one round to the breakdown.

    executor: the workers' mean compute; straggler: how much longer the slowest took;
    overhead: the round's time outside the slowest worker's compute (sending, scheduling,
    combining), kept per round so its median compares with the bare-round floor.
    """
    seconds = np.array(list(result.seconds.values()) or [0.0])
    overhead = max(0.0, wall - seconds.max())
    for key, value in (
        ("executor", seconds.mean()),
        ("straggler", seconds.max() - seconds.mean()),
        ("overhead", overhead),
        ("update", update),
    ):
        timings[key] = timings.get(key, 0.0) + float(value)
    timings["rounds"] += 1
    timings.setdefault("overhead_ms", []).append(round(1000 * overhead, 3))
    if result.resident_bytes:  # measured in evaluation rounds only (reading /proc costs milliseconds)
        timings["shard_bytes"] = int(result.resident_bytes)
