"""The driver's round loop: broadcast, map the partitions, tree-aggregate, update once.

The model never leaves NumPy on the driver and the data never reaches it: the driver only
sees sums the size of the parameters.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from dist_mnist import schedule
from dist_mnist.artifacts import save_checkpoint
from dist_mnist.config import TrainConfig
from dist_mnist.metrics import scores
from dist_mnist.nn.flat import layout_of, pack, unpack
from dist_mnist.nn.model import N_CLASSES, N_PIXELS, Params, init_params
from dist_mnist.nn.updaters import Nesterovs, make_updater, zeros_like
from dist_mnist.runs import finish_run_dir, prepare_run_dir, write_outputs
from dist_mnist.spark.dataset import SplitFiles, describe_split
from dist_mnist.spark.evaluate import evaluate_split
from dist_mnist.spark.progress import GracefulStop, Progress
from dist_mnist.spark.rounds import SMALL_HEAD, Plan, combine, make_round_fn


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


def make_plan(config: TrainConfig, train_split: SplitFiles, test_split: SplitFiles, params: Params) -> Plan:
    """What every partition needs to know, one partition per training part file."""
    P = len(train_split.files)
    return Plan(
        mode=config.mode, train_files=tuple((f,) for f in train_split.files),
        train_offsets=tuple(int(x) for x in np.cumsum((0,) + train_split.rows[:-1])),
        n_train=train_split.n_rows, test_files=tuple(test_split.files[p::P] for p in range(P)),
        param_layout=layout_of(params), seed=config.seed, batch_size=config.batch_size,
        averaging_frequency=config.averaging_frequency, updater=config.updater,
        learning_rate=config.learning_rate, momentum=config.momentum, l2=config.l2, n_classes=N_CLASSES,
    )


def train(sc, config: TrainConfig, data_dir: str, run_dir: str, resume: bool = False,
          overwrite: bool = False, log=None) -> dict:
    """Train on DATA/train, evaluate on DATA/test, write RUN/; return the final scores."""
    log = log or partial(print, flush=True)  # flushed: stdout is a pipe under spark-submit and CI
    t_start = time.perf_counter()
    run_dir, data_path = Path(run_dir), str(data_dir).rstrip("/")
    staging, checkpoint = prepare_run_dir(run_dir, config, resume, overwrite)
    train_split, test_split = describe_split(data_path + "/train"), describe_split(data_path + "/test")
    if config.batch_size > train_split.n_rows:
        raise ValueError(f"batch_size {config.batch_size} is larger than the {train_split.n_rows} training rows")
    P = len(train_split.files)
    if config.mode == "sync":
        rounds_per_epoch = schedule.n_batches(train_split.n_rows, config.batch_size)
    else:
        rounds_per_epoch = schedule.rounds_per_epoch_average(
            list(train_split.rows), config.batch_size, config.averaging_frequency)

    updater = make_updater(config.updater, config.learning_rate, config.momentum, config.l2)
    outer = None
    if config.mode == "average" and config.outer_updater == "nesterovs":
        outer = Nesterovs(config.outer_learning_rate, config.outer_momentum)
    if checkpoint:
        params, saved, meta = checkpoint
        state = {k: v for k, v in saved.items() if not k.startswith("outer/")}
        outer_v = {k[len("outer/"):]: v for k, v in saved.items() if k.startswith("outer/")}
        pos = Position(**{f.name: meta[f.name] for f in dataclasses.fields(Position)})
        log(f"resuming {staging} at epoch {pos.epoch + 1} round {pos.round_in_epoch + 1} "
            f"(round {pos.global_round} overall)")
    else:
        params = init_params(list(config.layer_sizes), config.seed)
        state = updater.init_state(params)
        outer_v = zeros_like(params) if outer else {}
        pos = Position()
    pos.timings["data_bytes"] = (train_split.n_rows + test_split.n_rows) * (N_PIXELS + 1)  # uint8 + label
    # the epoch whose end-of-epoch params the next round evaluates on the side
    pending_eval = len(pos.history) - 1 if pos.history and "test_accuracy" not in pos.history[-1] else None

    plan = make_plan(config, train_split, test_split, params)
    rdd = sc.parallelize(range(P), P)  # one element a partition: the partition's index
    depth = max(2, math.ceil(math.log(max(P, 2), 8)) + 1)
    total_rounds = rounds_per_epoch * config.epochs
    if config.max_rounds:
        total_rounds = min(total_rounds, config.max_rounds)
    progress = Progress(total_rounds, config.log_every_rounds or max(1, rounds_per_epoch // 10), log)
    log(f"training {list(config.layer_sizes)} in {config.mode} mode on {P} partitions: "
        f"{config.epochs} epochs x {rounds_per_epoch} rounds, batch {config.batch_size}, master {sc.master}")

    def save(message: str | None = None) -> None:
        pos.epoch_seconds = time.perf_counter() - epoch_clock
        arrays = {**state, **{f"outer/{k}": v for k, v in outer_v.items()}}
        save_checkpoint(staging, params, arrays, {**dataclasses.asdict(pos), "config": config.to_dict()})
        if message:
            raise KeyboardInterrupt(message)

    epoch_clock = time.perf_counter() - pos.epoch_seconds
    notice = "Ctrl-C: stopping after this round (press again to abort now)"
    with GracefulStop(lambda: progress.line(notice)) as stop:
        try:
            while pos.epoch < config.epochs and not (config.max_rounds and pos.global_round >= config.max_rounds):
                # 1. one round: broadcast, map the partitions, tree-aggregate, one update
                flat = pack(params) if config.mode == "sync" else np.concatenate([pack(params), pack(state)])
                vec, small, t = run_round(sc, rdd, plan, flat, pos.epoch, pos.round_in_epoch, pending_eval, depth)
                loss, n = small[0], int(small[1])
                if not math.isfinite(loss):
                    raise Diverged(f"loss became {loss} at epoch {pos.epoch + 1} round {pos.round_in_epoch + 1} "
                                   f"(round {pos.global_round + 1} overall); lower learning_rate")
                t_update = time.perf_counter()
                apply_round(config, updater, outer, params, state, outer_v, vec, n)
                t["update"] = time.perf_counter() - t_update
                record_timings(pos.timings, t, small, P)
                pos.round_in_epoch, pos.global_round = pos.round_in_epoch + 1, pos.global_round + 1
                pos.epoch_loss, pos.epoch_seen = pos.epoch_loss + loss, pos.epoch_seen + n

                # 2. the side evaluation of the previous epoch's final parameters
                if pending_eval is not None:
                    counts = small[SMALL_HEAD + P:].reshape(N_CLASSES, N_CLASSES).astype(np.int64)
                    pos.history[pending_eval]["test_accuracy"] = scores(counts)["accuracy"]
                    progress.line(f"epoch {pending_eval + 1} test accuracy {scores(counts)['accuracy']:.4f}")
                    pending_eval = None
                elapsed = time.perf_counter() - epoch_clock
                progress.round(pos.global_round, pos.epoch + 1, config.epochs, pos.round_in_epoch, rounds_per_epoch,
                               pos.epoch_loss / max(pos.epoch_seen, 1), pos.epoch_seen / max(elapsed, 1e-9))

                # 3. the end of an epoch, checkpoints and Ctrl-C
                if pos.round_in_epoch == rounds_per_epoch:
                    pos.history.append({
                        "epoch": pos.epoch + 1, "train_loss": pos.epoch_loss / max(pos.epoch_seen, 1),
                        "wall_seconds": elapsed, "samples_per_second": pos.epoch_seen / elapsed,
                        "elapsed_seconds": time.perf_counter() - t_start})
                    pending_eval = len(pos.history) - 1
                    pos.epoch, pos.round_in_epoch, pos.epoch_loss, pos.epoch_seen = pos.epoch + 1, 0, 0.0, 0
                    epoch_clock = time.perf_counter()
                    save()
                elif config.checkpoint_every_rounds and pos.global_round % config.checkpoint_every_rounds == 0:
                    save()
                if stop.requested:
                    save(f"stopped by Ctrl-C after round {pos.global_round} (epoch {pos.epoch + 1}); "
                         f"checkpoint saved in {staging} (resume with --resume)")
        except KeyboardInterrupt as e:
            if stop.requested and str(e):
                raise
            raise KeyboardInterrupt(f"interrupted at epoch {pos.epoch + 1}; the last checkpoint is in {staging} "
                                    f"(resume with --resume)") from None

    counts = evaluate_split(sc, params, test_split)
    final = scores(counts)
    if pending_eval is not None:
        pos.history[pending_eval]["test_accuracy"] = final["accuracy"]
    log(f"final test accuracy {final['accuracy']:.4f} after {pos.global_round} rounds, "
        f"{time.perf_counter() - t_start:.1f}s")
    write_outputs(staging, config, params, final, counts, pos.history, pos.timings, data_path, sc.version)
    finish_run_dir(staging, run_dir)
    return final


def run_round(sc, rdd, plan: Plan, flat: np.ndarray, epoch: int, step: int, pending_eval, depth: int):
    """Broadcast `flat`, run every partition, tree-aggregate: (vec, small, driver-side times)."""
    t0 = time.perf_counter()
    bc = sc.broadcast(flat)
    t1 = time.perf_counter()
    fn = make_round_fn(plan, bc, epoch, step, evaluate=pending_eval is not None)
    vec, small = rdd.mapPartitionsWithIndex(fn).treeAggregate(None, combine, combine, depth)
    t2 = time.perf_counter()
    bc.destroy()
    return vec, small, {"broadcast": t1 - t0, "job": t2 - t1}


def record_timings(timings: dict, t: dict, small: np.ndarray, P: int) -> None:
    """Add one round to the breakdown.

    executor: the partitions' mean compute; straggler: how much longer the slowest took;
    aggregate: the rest of the job (scheduling, serialisation, treeAggregate); overhead: a
    round's time outside compute and update (broadcast + aggregate), kept per round so its
    median compares with the bare-round floor.
    """
    seconds = small[SMALL_HEAD:SMALL_HEAD + P]
    aggregate = max(0.0, t["job"] - seconds.max())
    for key, value in (("broadcast", t["broadcast"]), ("executor", seconds.mean()),
                       ("straggler", seconds.max() - seconds.mean()), ("aggregate", aggregate),
                       ("update", t["update"])):
        timings[key] = timings.get(key, 0.0) + float(value)
    timings["rounds"] += 1
    timings.setdefault("overhead_ms", []).append(round(1000 * (t["broadcast"] + aggregate), 2))
    timings["shard_bytes"] = int(small[2])


def apply_round(config, updater, outer, params, state, outer_v, vec, n) -> None:
    """The driver's one update per round, from the float64 sums of the partitions."""
    layout = layout_of(params)
    if config.mode == "sync":
        grads = {k: g.astype(np.float32) for k, g in unpack(vec, layout).items()}
        updater.step(params, grads, state, n)
        return
    # average: vec holds n_p * (local - broadcast) for params then state
    n_params = sum(v.size for v in params.values())
    mean_delta = unpack((vec[:n_params] / max(n, 1)).astype(np.float32), layout)
    for k, d in unpack((vec[n_params:] / max(n, 1)).astype(np.float32), layout).items():
        state[k] += d
    if outer is None:
        for k, d in mean_delta.items():
            params[k] += d
    else:  # outer Nesterov step on the averaged delta, treating -delta as the gradient (DiLoCo)
        outer.step(params, {k: -d for k, d in mean_delta.items()}, outer_v, 1)
