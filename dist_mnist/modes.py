"""The two modes of a round: what a worker computes in it and how the driver applies it.

sync: one global minibatch a round, gradient sums, one DL4J step on the driver (the
single-process trainer's math at any W). average: k local DL4J steps a worker, the example-
weighted mean change applied on the driver (plain averaging or an outer Nesterov step).
TrainingArrays is what the driver updates; the updaters are built from the config here and
nowhere else. Pure NumPy."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from dist_mnist import schedule
from dist_mnist.config import TrainConfig
from dist_mnist.files.model import param_shapes
from dist_mnist.nn.flat import pack, unpack
from dist_mnist.nn.model import Params, init_params
from dist_mnist.nn.steps import Batcher, grad_sums, local_steps
from dist_mnist.nn.updaters import Nesterovs, Sgd, make_updater, zeros_like

if TYPE_CHECKING:  # rounds.py imports this module: its types only for the checker
    from dist_mnist.rounds import Plan, RoundResult, RoundSpec


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


# Beyond this many workers, average mode's rule (lr_scaling "linear") also splits a worker's
# epoch into W / MANY_WORKERS rounds, and beyond twice as many the rate grows as sqrt(W) only.
MANY_WORKERS = 32


def scaled_learning_rate(c: TrainConfig) -> float:
    """The learning rate of local steps at c.workers workers (average mode's; sync has none).

    Linear scaling (Goyal et al., 2017), relative to two workers: each of W workers sees 1/W of
    an epoch, so its local steps take W/2 times the tutorial's rate; with the outer Nesterov
    step this keeps the accuracy of two workers from W = 1 to 64 (docs/scaling.md). Beyond 64
    workers the linear rate makes the first epochs unstable: it grows as sqrt(W) from there.
    """
    w, big = c.workers, 2 * MANY_WORKERS
    return (
        c.learning_rate
        if c.lr_scaling == "none"
        else c.learning_rate * (max(1.0, w / 2) if w <= big else big / 2 * math.sqrt(w / big))
    )


def local_steps_per_round(c: TrainConfig, worker_steps: int) -> int:
    """k as average mode runs it, when a worker has `worker_steps` minibatches an epoch.

    averaging_frequency, except that beyond MANY_WORKERS workers (lr_scaling "linear") an epoch
    has at least W / MANY_WORKERS rounds: with a handful of local steps a worker, one round an
    epoch gives the outer momentum too few steps (docs/scaling.md).
    """
    k = c.averaging_frequency
    return (
        k
        if c.lr_scaling == "none" or c.workers <= MANY_WORKERS
        else min(k, max(1, math.ceil(worker_steps * MANY_WORKERS / c.workers)))
    )


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
        return scaled_learning_rate(config)  # the rule of lr_scaling, below

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


# copies of the parameters a run holds at once: the driver's parameters, updater state, outer
# velocity, the round's vector and the combined sums, the update's temporaries; a worker's
# received vector, local parameters and state, gradients and the change it sends back
DRIVER_COPIES, WORKER_COPIES = 7, 8


def memory_needed(config: TrainConfig, workers: int = 1) -> int:
    """Bytes of float32 arrays a run of `config` holds at once: the driver's and `workers` workers'."""
    n = sum(math.prod(shape) for shape in param_shapes(config.layer_sizes).values())
    return 4 * n * (DRIVER_COPIES + WORKER_COPIES * workers)
