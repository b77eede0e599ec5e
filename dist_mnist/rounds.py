"""One round: what the driver sends, what a worker computes on its shard, what comes back.

Pure NumPy. Every transport (a Spark job a round, the persistent barrier stage, in-process)
calls `compute_round` and combines the results with `combine_all`, in worker order, so they
give bit-identical answers by construction. A round is a pure function of the vector it was
sent, its RoundSpec and the worker's rows: a retried or relaunched worker returns exactly
the same thing, and the driver applies each round's update once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from dist_mnist import schedule
from dist_mnist.config import TrainConfig
from dist_mnist.data.shards import Shard
from dist_mnist.metrics import confusion_counts
from dist_mnist.modes import MODES, Mode, TrainingArrays, local_steps_per_round, split_input
from dist_mnist.nn.flat import Layout
from dist_mnist.nn.model import predict
from dist_mnist.nn.steps import Batcher

Rows = tuple[np.ndarray, np.ndarray]  # features (n, n_in) uint8 pixels or float32, labels (n,)


@dataclass(frozen=True)
class Plan:
    """What every worker needs for the whole run: the resolved config and the data facts."""

    config: TrainConfig  # resolved: workers, averaging_frequency, ... as run
    train: tuple[Shard, ...]  # one per worker
    test: tuple[Shard, ...]  # one per worker, the test split sharded the same way
    layout: Layout  # the parameters' (key, shape) order
    scope: str = ""  # names the run's shard files on the executors, removed when its transport closes

    @property
    def workers(self) -> int:
        return len(self.train)

    @property
    def n_train(self) -> int:
        return sum(s.n for s in self.train)

    @property
    def n_in(self) -> int:
        return self.config.layer_sizes[0]

    @property
    def n_classes(self) -> int:
        return self.config.layer_sizes[-1]

    def reader_args(self, shard: Shard) -> tuple[list, int, int]:
        """What a reader needs for a shard: its segments, the input width and the classes."""
        return list(shard.segments), self.n_classes, self.n_in

    @cached_property
    def n_params(self) -> int:
        return sum(int(np.prod(shape)) for _, shape in self.layout)

    @property
    def mode(self) -> Mode:
        """How a round of this run computes and how the driver applies it (sync or average)."""
        return MODES[self.config.mode]

    @property
    def ships_state(self) -> bool:
        """Whether a round's vector carries the updater state after the parameters."""
        return self.mode.ships_state(self.config)

    @property
    def rounds_per_epoch(self) -> int:
        """Rounds an epoch takes in this run's mode."""
        return self.mode.rounds_per_epoch(self)

    @cached_property
    def steps_per_round(self) -> int:
        """Average mode's k as run: the config's averaging_frequency, or fewer with many workers (modes.py)."""
        c = self.config
        return local_steps_per_round(c, max(schedule.n_batches(s.n, c.batch_size) for s in self.train))


@dataclass(frozen=True)
class RoundSpec:
    """Which round this is; with the vector sent, it determines the result."""

    epoch: int
    round_in_epoch: int  # sync: the global minibatch of the epoch; average: the round of the epoch
    train: bool = True  # False: an evaluation-only round (the final evaluation)
    evaluate: bool = False  # also count the sent parameters' predictions on the test shard


@dataclass(frozen=True)
class RoundResult:
    """What a worker returns, and what the driver's combine of all workers gives.

    sums: sync, the gradient sums; average, n * (local - sent) for params then state;
    float32 (empty in an evaluation-only round).
    """

    sums: np.ndarray
    loss: float  # loss sum
    n: int  # examples
    seconds: dict[int, float] = field(default_factory=dict)  # worker -> compute seconds
    shard_bytes: int = 0  # the workers' shard memory (PSS), measured in evaluation rounds
    confusion: np.ndarray | None = None  # int64 (C, C) [actual][predicted], when evaluating


class Combiner:
    """Adds worker results strictly in worker order: sums into one float32 buffer, in place.

    The order is part of the result (floating-point addition is not associative): every
    transport combines through this, so all give the same bits whatever arrives first.
    """

    def __init__(self) -> None:
        self.sums: np.ndarray | None = None
        self.loss, self.n, self.shard_bytes = 0.0, 0, 0
        self.seconds: dict[int, float] = {}
        self.confusion: np.ndarray | None = None

    def add(self, r: RoundResult) -> None:
        """Add the next worker's result."""
        if len(r.sums):
            if self.sums is None:
                self.sums = np.array(r.sums, dtype=np.float32)  # a writable copy: the driver updates from it
            else:
                np.add(self.sums, r.sums, out=self.sums)
        self.loss += r.loss
        self.n += r.n
        self.shard_bytes += r.shard_bytes
        self.seconds.update(r.seconds)
        if r.confusion is not None:
            self.confusion = r.confusion.copy() if self.confusion is None else self.confusion + r.confusion

    def result(self) -> RoundResult:
        """The combined result: float32 sums (empty if no worker sent any)."""
        sums = np.zeros(0, np.float32) if self.sums is None else self.sums
        return RoundResult(sums, self.loss, self.n, self.seconds, self.shard_bytes, self.confusion)


def combine_all(results: list[RoundResult]) -> RoundResult:
    """The results of workers 0..W-1, combined strictly in worker order."""
    combiner = Combiner()
    for r in results:
        combiner.add(r)
    return combiner.result()


def compute_round(plan: Plan, w: int, rows: Rows, test_rows, flat: np.ndarray, spec: RoundSpec) -> RoundResult:
    """Worker w's result of one round, from its training rows and the vector it was sent.

    test_rows: a callable returning the worker's test rows (loaded only when evaluating).
    `flat` is read-only here: nothing is written into it.
    """
    t0 = time.perf_counter()
    confusion = None
    if spec.evaluate:
        params, _ = split_input(plan, flat)
        images, labels = test_rows()
        confusion = (
            confusion_counts(labels, predict(params, images), plan.n_classes)
            if len(labels)
            else np.zeros((plan.n_classes, plan.n_classes), np.int64)
        )
    if spec.train:
        sums, loss, n = plan.mode.work(plan, w, Batcher(*rows, plan.config.batch_size), flat, spec)
    else:
        sums, loss, n = np.zeros(0, np.float32), 0.0, 0
    return RoundResult(sums, float(loss), int(n), {w: time.perf_counter() - t0}, 0, confusion)


def apply_round(plan: Plan, arrays: TrainingArrays, result: RoundResult) -> None:
    """The driver's one update per round, in place, from the combined sums (used as scratch)."""
    plan.mode.apply(plan, arrays, result)
