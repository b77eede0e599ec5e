"""The driver's round loop: broadcast, map the partitions, tree-aggregate, update once.

The model never leaves NumPy on the driver and the data never reaches it: the driver only
sees sums the size of the parameters.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import signal
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np

from dist_mnist import schedule
from dist_mnist.artifacts import atomic_write_json, atomic_write_bytes, load_checkpoint, save_checkpoint, save_model
from dist_mnist.config import TrainConfig, config_from_dict, differing_keys
from dist_mnist.data.ingest import read_metadata
from dist_mnist.metrics import scores, stats_text
from dist_mnist.nn.flat import layout_of, pack, unpack
from dist_mnist.nn.model import N_CLASSES, init_params
from dist_mnist.nn.updaters import Nesterovs, make_updater, zeros_like
from dist_mnist.spark.dataset import describe_split
from dist_mnist.spark.evaluate import evaluate_split
from dist_mnist.spark.progress import Progress
from dist_mnist.spark.rounds import SMALL_HEAD, Plan, combine, make_round_fn


class Diverged(RuntimeError):
    """The loss became NaN or inf."""


class GracefulStop:
    """First Ctrl-C: finish the round, checkpoint, stop. A second one stops at once.

    PySpark's own SIGINT handler cancels the running job mid-call, which leaves Py4J
    tracebacks behind; the driver's loop is the better place to stop.
    """

    def __init__(self, notify):
        self.notify, self.requested, self.previous = notify, False, None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.notify()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None


def partial_dir(run_dir: Path) -> Path:
    """Where an unfinished run lives until it completes and is renamed to run_dir."""
    return run_dir.with_name(run_dir.name + ".partial")


def check_run_dir(run_dir: Path, resume: bool, overwrite: bool) -> None:
    """Refuse, before anything starts, a RUN that exists without --overwrite or --resume."""
    run_dir, staging = Path(run_dir), partial_dir(Path(run_dir))
    unfinished = (staging / "checkpoint.npz").exists()
    if resume:
        if run_dir.exists() and not unfinished:
            raise FileExistsError(f"{run_dir}: this run already finished; nothing to resume")
        if not unfinished:
            raise FileNotFoundError(f"{staging}: no checkpoint to resume from (start without --resume)")
    elif (run_dir.exists() or unfinished) and not overwrite:
        which = run_dir if run_dir.exists() else staging
        raise FileExistsError(f"{which}: already exists (pass --overwrite to replace it, or --resume to continue)")


def prepare_run_dir(run_dir: Path, config: TrainConfig, resume: bool, overwrite: bool):
    """The staging directory to train in, and the checkpoint to resume from (or None)."""
    staging = partial_dir(run_dir)
    check_run_dir(run_dir, resume, overwrite)
    if staging.exists() and not (staging / "checkpoint.npz").exists():
        shutil.rmtree(staging)  # a run that failed before its first checkpoint: nothing to keep
    if resume:
        params, state, meta = load_checkpoint(staging)
        saved = config_from_dict(meta["config"], f"{staging}/checkpoint.npz")
        diff = differing_keys(saved, config)
        if diff:
            detail = ", ".join(f"{k}: {getattr(saved, k)!r} -> {getattr(config, k)!r}" for k in diff)
            raise ValueError(f"--resume: config differs from the checkpoint's in {detail}")
        return staging, (params, state, meta)
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging, None


def finish_run_dir(staging: Path, run_dir: Path) -> None:
    """Swap the finished staging directory into place; an old run stays whole until then."""
    if run_dir.exists():
        old = run_dir.with_name(f".{run_dir.name}.old-{os.getpid()}")
        os.replace(run_dir, old)
        os.replace(staging, run_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, run_dir)


def train(sc, config: TrainConfig, data_dir: str, run_dir: str, resume: bool = False,
          overwrite: bool = False, log=None) -> dict:
    """Train on DATA/train, evaluate on DATA/test, write RUN/; return the final scores."""
    log = log or partial(print, flush=True)  # flushed: stdout is a pipe under spark-submit and CI
    run_dir = Path(run_dir)
    t_start = time.perf_counter()
    staging, checkpoint = prepare_run_dir(run_dir, config, resume, overwrite)
    data_path = str(data_dir).rstrip("/")
    train_split, test_split = describe_split(data_path + "/train"), describe_split(data_path + "/test")
    P = len(train_split.files)
    if config.batch_size > train_split.n_rows:
        raise ValueError(f"batch_size {config.batch_size} is larger than the {train_split.n_rows} training rows")
    offsets = tuple(int(x) for x in np.cumsum((0,) + train_split.rows[:-1]))
    plan = Plan(
        mode=config.mode, train_files=tuple((f,) for f in train_split.files), train_offsets=offsets,
        n_train=train_split.n_rows, test_files=tuple(test_split.files[p::P] for p in range(P)),
        param_layout=[], seed=config.seed, batch_size=config.batch_size,
        averaging_frequency=config.averaging_frequency, updater=config.updater,
        learning_rate=config.learning_rate, momentum=config.momentum, l2=config.l2, n_classes=N_CLASSES,
    )
    if config.mode == "sync":
        rounds_per_epoch = schedule.n_batches(train_split.n_rows, config.batch_size)
    else:
        rounds_per_epoch = schedule.rounds_per_epoch_average(list(train_split.rows), config.batch_size, config.averaging_frequency)

    updater = make_updater(config.updater, config.learning_rate, config.momentum, config.l2)
    pending_eval = None  # the epoch whose end-of-epoch params the next round evaluates
    if checkpoint:
        params, saved_state, meta = checkpoint
        state = {k: v for k, v in saved_state.items() if not k.startswith("outer/")}
        outer_v = {k[6:]: v for k, v in saved_state.items() if k.startswith("outer/")}
        epoch, r0, global_round = meta["epoch"], meta["round_in_epoch"], meta["global_round"]
        history, timings = meta["history"], meta["timings"]
        if r0 == 0 and history and "test_accuracy" not in history[-1]:
            pending_eval = len(history) - 1
        log(f"resuming {staging} at epoch {epoch + 1} round {r0 + 1} (round {global_round} overall)")
    else:
        params = init_params(list(config.layer_sizes), config.seed)
        state = updater.init_state(params)
        outer_v = zeros_like(params) if config.mode == "average" and config.outer_updater != "none" else {}
        epoch, r0, global_round, history = 0, 0, 0, []
        timings = {"broadcast": 0.0, "executor": 0.0, "aggregate": 0.0, "update": 0.0, "rounds": 0}
    plan = Plan(**{**plan.__dict__, "param_layout": layout_of(params)})
    outer = Nesterovs(config.outer_learning_rate, config.outer_momentum) if outer_v else None

    total_rounds = rounds_per_epoch * config.epochs
    if config.max_rounds:
        total_rounds = min(total_rounds, config.max_rounds)
    every = config.log_every_rounds or max(1, rounds_per_epoch // 10)
    progress = Progress(total_rounds, every, log)
    log(f"training {list(config.layer_sizes)} in {config.mode} mode on {P} partitions: "
        f"{config.epochs} epochs x {rounds_per_epoch} rounds, batch {config.batch_size}, master {sc.master}")
    rdd = sc.parallelize(range(P), P)
    depth = max(2, math.ceil(math.log(max(P, 2), 8)) + 1)

    def checkpoint_now(next_epoch: int, next_round: int) -> None:
        full_state = {**state, **{f"outer/{k}": v for k, v in outer_v.items()}}
        save_checkpoint(staging, params, full_state, {
            "epoch": next_epoch, "round_in_epoch": next_round, "global_round": global_round,
            "config": config.to_dict(), "history": history, "timings": timings,
            # the unfinished epoch's running loss and time, so a resumed epoch reports all of it
            "epoch_loss": epoch_loss if next_round else 0.0, "epoch_seen": epoch_seen if next_round else 0,
            "epoch_seconds": time.perf_counter() - epoch_clock if next_round else 0.0})

    epoch_clock = time.perf_counter()
    epoch_loss, epoch_seen = 0.0, 0
    if checkpoint:  # resuming mid-epoch: the loss of the rounds this epoch already ran
        epoch_loss, epoch_seen = checkpoint[2].get("epoch_loss", 0.0), checkpoint[2].get("epoch_seen", 0)
        epoch_clock -= checkpoint[2].get("epoch_seconds", 0.0)
    notice = "Ctrl-C: stopping after this round (press again to abort now)"
    with GracefulStop(lambda: progress.line(notice)) as stop:
        try:
            while epoch < config.epochs and not (config.max_rounds and global_round >= config.max_rounds):
                for r in range(r0, rounds_per_epoch):
                    if config.max_rounds and global_round >= config.max_rounds:
                        break
                    t0 = time.perf_counter()
                    flat = pack(params) if config.mode == "sync" else np.concatenate([pack(params), pack(state)])
                    bc = sc.broadcast(flat)
                    t1 = time.perf_counter()
                    fn = make_round_fn(plan, bc, epoch, r, evaluate=pending_eval is not None)
                    vec, small = rdd.mapPartitionsWithIndex(fn).treeAggregate(None, combine, combine, depth)
                    t2 = time.perf_counter()
                    bc.destroy()
                    loss, n = small[0], int(small[1])
                    if not math.isfinite(loss):
                        raise Diverged(f"loss became {loss} at epoch {epoch + 1} round {r + 1} "
                                       f"(round {global_round + 1} overall); lower learning_rate")
                    apply_round(config, updater, outer, params, state, outer_v, vec, n)
                    t3 = time.perf_counter()
                    global_round += 1
                    executor_s = small[2] / P
                    timings["broadcast"] += t1 - t0
                    timings["executor"] += executor_s
                    timings["aggregate"] += max(0.0, t2 - t1 - executor_s)
                    timings["update"] += t3 - t2
                    timings["rounds"] += 1
                    timings["shard_bytes"] = int(small[3])
                    if pending_eval is not None:
                        counts = small[SMALL_HEAD:].reshape(N_CLASSES, N_CLASSES).astype(np.int64)
                        history[pending_eval]["test_accuracy"] = scores(counts)["accuracy"]
                        progress.line(f"epoch {pending_eval + 1} test accuracy {history[pending_eval]['test_accuracy']:.4f}")
                        pending_eval = None
                    epoch_loss, epoch_seen = epoch_loss + loss, epoch_seen + n
                    elapsed = time.perf_counter() - epoch_clock
                    progress.round(global_round, epoch + 1, config.epochs, r + 1, rounds_per_epoch,
                                   epoch_loss / max(epoch_seen, 1), epoch_seen / max(elapsed, 1e-9))
                    if stop.requested:
                        checkpoint_now(epoch, r + 1)
                        raise KeyboardInterrupt(f"stopped by Ctrl-C after epoch {epoch + 1} round {r + 1}; "
                                                f"checkpoint saved in {staging} (resume with --resume)")
                    if config.checkpoint_every_rounds and global_round % config.checkpoint_every_rounds == 0:
                        checkpoint_now(epoch, r + 1)
                else:
                    wall = time.perf_counter() - epoch_clock
                    history.append({"epoch": epoch + 1, "train_loss": epoch_loss / max(epoch_seen, 1),
                                    "wall_seconds": wall, "samples_per_second": epoch_seen / wall,
                                    "elapsed_seconds": time.perf_counter() - t_start})
                    pending_eval = len(history) - 1
                    epoch, r0 = epoch + 1, 0
                    checkpoint_now(epoch, 0)
                    epoch_clock, epoch_loss, epoch_seen = time.perf_counter(), 0.0, 0
                    continue
                break  # max_rounds reached inside the epoch
        except KeyboardInterrupt as e:
            if stop.requested and str(e):
                raise
            raise KeyboardInterrupt(f"interrupted at epoch {epoch + 1}; the last checkpoint is in {staging} "
                                    f"(resume with --resume)") from None

    counts = evaluate_split(sc, params, test_split)
    final = scores(counts)
    if pending_eval is not None:
        history[pending_eval]["test_accuracy"] = final["accuracy"]
    log(f"final test accuracy {final['accuracy']:.4f} after {global_round} rounds, "
        f"{time.perf_counter() - t_start:.1f}s")
    write_outputs(staging, config, params, final, counts, history, timings, data_path, sc)
    (staging / "checkpoint.npz").unlink(missing_ok=True)
    finish_run_dir(staging, run_dir)
    return final


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


def write_outputs(staging: Path, config, params, final, counts, history, timings, data_path, sc) -> None:
    """model.npz, model.json, metrics.json and evaluation.txt, each written atomically."""
    rounds = max(timings["rounds"], 1)
    breakdown = {k: {"total_seconds": timings[k], "mean_ms": 1000 * timings[k] / rounds}
                 for k in ("broadcast", "executor", "aggregate", "update")}
    breakdown["rounds"] = timings["rounds"]
    breakdown["shard_bytes"] = timings.get("shard_bytes", 0)
    final_public = {k: final[k] for k in ("examples", "accuracy", "precision", "recall", "f1")}
    meta = {
        "layer_sizes": list(config.layer_sizes), "activations": ["relu"] * (len(config.layer_sizes) - 2) + ["softmax"],
        "input_scaling": "image_bytes / 255", "config": config.to_dict(), "data": {"path": data_path, "metadata": read_metadata(data_path)},
        "metrics": final_public,
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "spark": sc.version},
    }
    save_model(staging, params, meta)
    atomic_write_json(staging / "metrics.json", {"epochs": history, "rounds": breakdown, "final": final_public})
    atomic_write_bytes(staging / "evaluation.txt", (stats_text(counts) + "\n").encode())
    atomic_write_json(staging / "evaluation.json", {**final, "confusion": counts.tolist()})
