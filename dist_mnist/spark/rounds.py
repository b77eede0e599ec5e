"""Executor side of a round: the function each partition runs, built from plain local values.

A round is a pure function of the broadcast vector, the round descriptor and the data, so
a retried or speculative task returns exactly the same thing. Each partition yields one
(vec float32, small float64) pair; `combine` sums them in float64.

small = [loss sum, examples, shard bytes, seconds of partition 0..P-1 (each fills its own
slot, so the sum holds them all), confusion counts (C*C) when evaluating]
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dist_mnist import schedule
from dist_mnist.metrics import confusion_counts
from dist_mnist.nn.flat import Layout, pack, unpack
from dist_mnist.nn.model import predict
from dist_mnist.nn.steps import Batcher, grad_sums, local_steps
from dist_mnist.nn.updaters import make_updater
from dist_mnist.spark.shards import get_shard, resident_bytes

SMALL_HEAD = 3  # loss sum, examples, shard bytes; then P per-partition seconds


@dataclass(frozen=True)
class Plan:
    """Everything static a partition needs, shipped once per round in the closure (small)."""

    mode: str
    train_files: tuple[tuple[str, ...], ...]  # per partition
    train_offsets: tuple[int, ...]  # global index of each partition's first row
    n_train: int
    test_files: tuple[tuple[str, ...], ...]  # per partition, may be empty
    param_layout: Layout
    seed: int
    batch_size: int
    averaging_frequency: int
    updater: str
    learning_rate: float
    momentum: float
    l2: float
    n_classes: int


@lru_cache(maxsize=4)
def _global_perm(seed: int, epoch: int, n: int) -> np.ndarray:
    return schedule.epoch_permutation(seed, epoch, n)


def make_round_fn(plan: Plan, bc, epoch: int, step: int, evaluate: bool):
    """The mapPartitionsWithIndex function of one round.

    sync: `step` is the global minibatch of this epoch; returns gradient sums.
    average: `step` is the round within the epoch; returns n * (local params - broadcast params)
    and n * (local state - broadcast state).
    """

    def run(p: int, _):
        t0 = time.perf_counter()
        images, labels = get_shard(list(plan.train_files[p]), plan.n_classes)
        flat = bc.value  # read-only: never written in place
        n_params = sum(int(np.prod(s)) for _, s in plan.param_layout)
        params = unpack(flat[:n_params], plan.param_layout)
        confusion = _evaluate(plan, p, params) if evaluate else None
        batcher = Batcher(images, labels, plan.batch_size)
        if plan.mode == "sync":
            rows = schedule.global_batch(_global_perm(plan.seed, epoch, plan.n_train), step, plan.batch_size)
            lo = plan.train_offsets[p]
            local = rows[(rows >= lo) & (rows < lo + len(labels))] - lo
            if len(local):
                grads, loss, n = grad_sums(params, batcher, local)
                vec = pack(grads)
            else:
                vec, loss, n = np.zeros(n_params, np.float32), 0.0, 0
        else:
            local_params = {k: v.copy() for k, v in params.items()}
            state = {k: v.copy() for k, v in unpack(flat[n_params:], plan.param_layout).items()}
            updater = make_updater(plan.updater, plan.learning_rate, plan.momentum, plan.l2)
            perm = schedule.epoch_permutation(plan.seed, epoch, len(labels), partition=p)
            batches = schedule.local_batches(perm, step, plan.batch_size, plan.averaging_frequency)
            loss, n = local_steps(local_params, state, updater, batcher, batches)
            new = np.concatenate([pack(local_params), pack(state)])
            vec = (new - flat) * np.float32(n)
        seconds = np.zeros(len(plan.train_files))
        seconds[p] = time.perf_counter() - t0
        small = [loss, n, resident_bytes(), *seconds]
        if confusion is not None:
            small.extend(confusion.ravel())
        yield vec, np.asarray(small, dtype=np.float64)

    return run


def _evaluate(plan: Plan, p: int, params) -> np.ndarray:
    """Confusion counts of the broadcast params on this partition's test files."""
    if not plan.test_files[p]:
        return np.zeros((plan.n_classes, plan.n_classes), np.int64)
    images, labels = get_shard(list(plan.test_files[p]), plan.n_classes)
    return confusion_counts(labels, predict(params, images), plan.n_classes)


def combine(a, b):
    """Sum two partition results in float64; None is the empty sum."""
    if a is None:
        return b
    if b is None:
        return a
    vec = a[0] if a[0].dtype == np.float64 else a[0].astype(np.float64)
    vec += b[0]
    return vec, a[1] + b[1]
