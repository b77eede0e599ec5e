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
from functools import cached_property, lru_cache

import numpy as np

from dist_mnist import schedule
from dist_mnist.config import TrainConfig, local_steps_per_round, scaled_learning_rate
from dist_mnist.metrics import confusion_counts
from dist_mnist.nn.flat import Layout, pack, unpack
from dist_mnist.nn.model import Params, init_params, predict
from dist_mnist.nn.steps import Batcher, grad_sums, local_steps
from dist_mnist.nn.updaters import Nesterovs, Sgd, make_updater, zeros_like
from dist_mnist.shards import Shard

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
        """Average mode's k as run: the config's averaging_frequency, or fewer with many workers (config.py)."""
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
    resident_bytes: int = 0  # the workers' shard memory (PSS), measured in evaluation rounds
    confusion: np.ndarray | None = None  # int64 (C, C) [actual][predicted], when evaluating


class Combiner:
    """Adds worker results strictly in worker order: sums into one float32 buffer, in place.

    The order is part of the result (floating-point addition is not associative): every
    transport combines through this, so all give the same bits whatever arrives first.
    """

    def __init__(self) -> None:
        self.sums: np.ndarray | None = None
        self.loss, self.n, self.resident_bytes = 0.0, 0, 0
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
        self.resident_bytes += r.resident_bytes
        self.seconds.update(r.seconds)
        if r.confusion is not None:
            self.confusion = r.confusion.copy() if self.confusion is None else self.confusion + r.confusion

    def result(self) -> RoundResult:
        """The combined result: float32 sums (empty if no worker sent any)."""
        sums = np.zeros(0, np.float32) if self.sums is None else self.sums
        return RoundResult(sums, self.loss, self.n, self.seconds, self.resident_bytes, self.confusion)


def combine_all(results: list[RoundResult]) -> RoundResult:
    """The results of workers 0..W-1, combined strictly in worker order."""
    combiner = Combiner()
    for r in results:
        combiner.add(r)
    return combiner.result()


def round_input(plan: Plan, params: Params, state: Params) -> np.ndarray:
    """The vector a round sends: the parameters, then the updater state where the mode ships it."""
    return np.concatenate([pack(params), pack(state)]) if plan.ships_state else pack(params)


def split_input(plan: Plan, flat: np.ndarray) -> tuple[Params, Params]:
    """Views (params, state) of a round's vector; state is {} where the mode does not ship it."""
    n = plan.n_params
    params = unpack(flat[:n], plan.layout)
    return params, (unpack(flat[n:], plan.layout) if plan.ships_state else {})


def updater_of(config: TrainConfig, learning_rate: float | None = None) -> Nesterovs | Sgd:
    """The config's updater (its name, momentum and L2) at `learning_rate` (default the config's)."""
    lr = config.learning_rate if learning_rate is None else learning_rate
    return make_updater(config.updater, lr, config.momentum, config.l2)


@lru_cache(maxsize=4)
def _global_perm(seed: int, epoch: int, n: int) -> np.ndarray:
    return schedule.epoch_permutation(seed, epoch, n)


class Sync:
    """Each round is one global minibatch drawn across the workers; they return gradient sums,
    the driver takes one DL4J step with them: the single-process trainer's math at any W."""

    name = "sync"
    local_steps = False  # the workers compute gradients; only the driver steps

    def ships_state(self, config: TrainConfig) -> bool:
        return False  # the updater state stays on the driver

    def rounds_per_epoch(self, plan: Plan) -> int:
        return schedule.n_batches(plan.n_train, plan.config.batch_size)

    def local_learning_rate(self, config: TrainConfig) -> float:
        return config.learning_rate  # sync never scales it: there are no local steps

    def has_outer_step(self, config: TrainConfig) -> bool:
        return False

    def work(self, plan: Plan, w: int, batcher: Batcher, flat: np.ndarray, spec: RoundSpec):
        """Worker w's gradient sums (packed), loss sum and count for this round's minibatch."""
        c = plan.config
        params, _ = split_input(plan, flat)
        batch = schedule.global_batch(_global_perm(c.seed, spec.epoch, plan.n_train), spec.round_in_epoch, c.batch_size)
        lo = plan.train[w].first
        local = batch[(batch >= lo) & (batch < lo + len(batcher.labels))] - lo
        if not len(local):
            return np.zeros(plan.n_params, np.float32), 0.0, 0
        grads, loss, n = grad_sums(params, batcher, local)
        return pack(grads), loss, n

    def apply(self, plan: Plan, arrays: TrainingArrays, result: RoundResult) -> None:
        """One DL4J step from the combined gradient sums (used as scratch)."""
        arrays.updater.step(arrays.params, unpack(result.sums, plan.layout), arrays.state, result.n)


class Average:
    """Each worker runs k local DL4J steps from the parameters (and updater state) it was sent
    and returns n * its change; the driver averages the changes, weighted by examples, and
    applies them (plain averaging, or an outer Nesterov step on the mean change, DiLoCo-style)."""

    name = "average"
    local_steps = True

    def ships_state(self, config: TrainConfig) -> bool:
        return config.updater == "nesterovs"  # the velocity is averaged too

    def rounds_per_epoch(self, plan: Plan) -> int:
        c = plan.config
        return schedule.rounds_per_epoch_average([s.n for s in plan.train], c.batch_size, plan.steps_per_round)

    def local_learning_rate(self, config: TrainConfig) -> float:
        return scaled_learning_rate(config)  # the rule of lr_scaling, in config.py

    def has_outer_step(self, config: TrainConfig) -> bool:
        return config.outer_updater == "nesterovs"

    def work(self, plan: Plan, w: int, batcher: Batcher, flat: np.ndarray, spec: RoundSpec):
        """n * (local - sent) after worker w's local steps of this round, loss sum and count."""
        c = plan.config
        params, state = split_input(plan, flat)
        local_params = {k: v.copy() for k, v in params.items()}
        local_state = {k: v.copy() for k, v in state.items()}
        updater = updater_of(c, self.local_learning_rate(c))
        perm = schedule.epoch_permutation(c.seed, spec.epoch, len(batcher.labels), partition=w)
        batches = schedule.local_batches(perm, spec.round_in_epoch, c.batch_size, plan.steps_per_round)
        loss, n = local_steps(local_params, local_state, updater, batcher, batches)
        new = round_input(plan, local_params, local_state)
        return (new - flat) * np.float32(n), loss, n

    def apply(self, plan: Plan, arrays: TrainingArrays, result: RoundResult) -> None:
        """The example-weighted mean change, added (or an outer Nesterov step taken on it)."""
        n = max(result.n, 1)
        # the sums hold n_w * (local - sent) for the parameters, then the updater state
        mean_delta = unpack((result.sums[: plan.n_params] / n).astype(np.float32), plan.layout)
        if plan.ships_state:
            for k, d in unpack((result.sums[plan.n_params :] / n).astype(np.float32), plan.layout).items():
                arrays.state[k] += d
        if arrays.outer is None:
            for k, d in mean_delta.items():
                arrays.params[k] += d
        else:  # an outer Nesterov step on the averaged delta, treating -delta as the gradient (DiLoCo)
            # longhand: one step a round saves too little to pay numba's start-up (benchmarks/updater.py); same bits
            arrays.outer.step(arrays.params, {k: -d for k, d in mean_delta.items()}, arrays.outer_v, 1, longhand=True)


Mode = Sync | Average
MODES: dict[str, Mode] = {"sync": Sync(), "average": Average()}


def local_learning_rate(config: TrainConfig) -> float:
    """The learning rate of the workers' steps in the config's mode (what model.json records)."""
    return MODES[config.mode].local_learning_rate(config)


def has_outer_step(config: TrainConfig) -> bool:
    """Whether the config's mode keeps an outer velocity (saved in checkpoints)."""
    return MODES[config.mode].has_outer_step(config)


@dataclass
class TrainingArrays:
    """What the driver updates each round: parameters, updater state, outer velocity, and the
    updaters that step them (built from the config here and nowhere else)."""

    params: Params
    state: Params
    outer_v: Params
    updater: Nesterovs | Sgd
    outer: Nesterovs | None

    @classmethod
    def of(cls, config: TrainConfig, params: Params, state: Params, outer_v: Params) -> TrainingArrays:
        """The driver's updaters around these arrays: the config's, and the outer step where the mode has one."""
        outer = Nesterovs(config.outer_learning_rate, config.outer_momentum) if outer_v else None
        return cls(params, state, outer_v, updater_of(config), outer)

    @classmethod
    def new(cls, config: TrainConfig) -> TrainingArrays:
        """Xavier-initialised parameters, zero updater state and outer velocity."""
        params = init_params(list(config.layer_sizes), config.seed)
        outer_v = zeros_like(params) if MODES[config.mode].has_outer_step(config) else {}
        return cls.of(config, params, updater_of(config).init_state(params), outer_v)


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
