"""The driver's round loop: send the parameters, let every worker compute, combine, update once.

The model never leaves NumPy on the driver and the data never reaches it: the driver only
sees sums the size of the parameters. How a round travels is a Transport (dist_mnist.transport);
this loop does not know which one runs. No Spark here.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from dist_mnist.driver.checkpoint import Position, TrainState
from dist_mnist.driver.prepare import Prepared
from dist_mnist.driver.progress import GracefulStop, Interrupted, Progress
from dist_mnist.metrics import scores
from dist_mnist.modes import round_input
from dist_mnist.rounds import Plan, RoundResult, RoundSpec, apply_round
from dist_mnist.transport import Transport

EpochListener = Callable[[dict], None]  # called with each epoch's record once it is complete


class Diverged(RuntimeError):
    """The loss became NaN or inf."""


def run_rounds(
    plan: Plan,
    run: Prepared,
    transport: Transport,
    stop: GracefulStop,
    progress: Progress,
    on_epoch: EpochListener | None = None,
) -> int | None:
    """Train until the run's epochs (or max_rounds) are done; checkpoint every epoch (and every
    checkpoint_every_rounds rounds); a first Ctrl-C stops after the round with a checkpoint.

    Returns the epoch whose test accuracy is still due (the final evaluation gives it), or None.
    """
    c, ts = plan.config, run.state
    pos, per_epoch = ts.pos, plan.rounds_per_epoch
    # the epoch whose end-of-epoch parameters the next round evaluates on the side
    pending = len(pos.history) - 1 if pos.history and "test_accuracy" not in pos.history[-1] else None
    epoch_clock = time.perf_counter() - pos.epoch_seconds
    with second_ctrl_c(pos, run.partial):
        while pos.epoch < c.epochs and not (c.max_rounds and pos.global_round >= c.max_rounds):
            # 1. one round: send, compute on every worker, combine, one update
            spec = RoundSpec(pos.epoch, pos.round_in_epoch, evaluate=pending is not None)
            t_round = time.perf_counter()
            result = transport.run_round(round_input(plan, ts.arrays.params, ts.arrays.state), spec)
            t_update = time.perf_counter()
            check_finite(result, pos)
            apply_round(plan, ts.arrays, result)
            pos.timings.record(result, t_update - t_round, time.perf_counter() - t_update)
            run.phases.mark("first_round")  # the workers' start and shard loads land in the first
            pos.round_in_epoch, pos.global_round = pos.round_in_epoch + 1, pos.global_round + 1
            pos.epoch_loss, pos.epoch_seen = pos.epoch_loss + result.loss, pos.epoch_seen + result.n

            # 2. the side evaluation of the previous epoch's final parameters
            if pending is not None:
                assert result.confusion is not None  # spec.evaluate asked the workers for it
                record_accuracy(pos, pending, scores(result.confusion)["accuracy"], progress, on_epoch)
                pending = None
            elapsed = time.perf_counter() - epoch_clock
            loss, speed = pos.epoch_loss / max(pos.epoch_seen, 1), pos.epoch_seen / max(elapsed, 1e-9)
            progress.round(pos.global_round, pos.epoch + 1, c.epochs, pos.round_in_epoch, per_epoch, loss, speed)

            # 3. the end of an epoch (its test accuracy comes with the next round), checkpoints, Ctrl-C
            if pos.round_in_epoch == per_epoch:
                end_epoch(pos, elapsed, run.phases.elapsed())
                pending = len(pos.history) - 1 if run.has_test else None
                if pending is None and on_epoch:
                    on_epoch(pos.history[-1])
                epoch_clock = time.perf_counter()
            if pos.round_in_epoch == 0 or (
                c.checkpoint_every_rounds and pos.global_round % c.checkpoint_every_rounds == 0
            ):
                save(ts, run, epoch_clock)
            if stop.requested:
                save(ts, run, epoch_clock)
                raise stopped_after_round(pos, run.partial)
    return pending


def stopped_after_round(pos: Position, partial: Path) -> Interrupted:
    """The first Ctrl-C, once the round in flight is done and checkpointed."""
    where = f"after round {pos.global_round} (epoch {pos.epoch + 1})"
    saved = f"checkpoint saved in {partial} (resume with --resume)"
    return Interrupted(f"stopped by Ctrl-C {where}; {saved}", partial, started=True)


@contextmanager
def second_ctrl_c(pos: Position, partial: Path) -> Iterator[None]:
    """A second Ctrl-C stops at once (the first stops after the round): say where the last checkpoint is."""
    try:
        yield
    except Interrupted:
        raise
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted at epoch {pos.epoch + 1}; the last checkpoint is in {partial} (resume with --resume)",
            partial,
            started=True,
        ) from None


def check_finite(result: RoundResult, pos: Position) -> None:
    """A NaN or infinite loss ends the run: nothing it would train from then on is worth keeping."""
    if not math.isfinite(result.loss):
        raise Diverged(
            f"loss became {result.loss} at epoch {pos.epoch + 1} round {pos.round_in_epoch + 1} "
            f"(round {pos.global_round + 1} overall); lower learning_rate"
        )


def end_epoch(pos: Position, elapsed: float, since_start: float) -> None:
    """Close the epoch: its record (loss, wall seconds, speed), the position at the next one."""
    pos.history.append(
        {
            "epoch": pos.epoch + 1,
            "train_loss": pos.epoch_loss / max(pos.epoch_seen, 1),
            "wall_seconds": elapsed,
            "samples_per_second": pos.epoch_seen / elapsed,
            "elapsed_seconds": since_start,
        }
    )
    pos.epoch, pos.round_in_epoch, pos.epoch_loss, pos.epoch_seen = pos.epoch + 1, 0, 0.0, 0


def record_accuracy(
    pos: Position, epoch: int, accuracy: float, progress: Progress, on_epoch: EpochListener | None
) -> None:
    """An epoch's test accuracy, once known: into its record, on the screen, to the listener."""
    pos.history[epoch]["test_accuracy"] = accuracy
    progress.line(f"epoch {epoch + 1} test accuracy {accuracy:.4f}")
    if on_epoch:
        on_epoch(pos.history[epoch])


def save(ts: TrainState, run: Prepared, epoch_clock: float) -> None:
    """A checkpoint of where the run is, with the current epoch's seconds so far."""
    ts.pos.epoch_seconds = time.perf_counter() - epoch_clock
    ts.save(run.partial, run.config)
