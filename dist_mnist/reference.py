"""The single-process reference trainer: the same model, updater and data order, no Spark.

It is the oracle the distributed trainer is tested against (sync mode equals it), and the
baseline that shows what the tutorial's recipe reaches on one core.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from dist_mnist import schedule
from dist_mnist.config import TrainConfig
from dist_mnist.metrics import confusion_counts, scores
from dist_mnist.modes import updater_of
from dist_mnist.nn.model import Params, init_params, predict
from dist_mnist.nn.steps import Batcher, grad_sums


def train_reference(
    config: TrainConfig,
    images: np.ndarray,
    labels: np.ndarray,
    test: tuple[np.ndarray, np.ndarray] | None = None,
    max_steps: int = 0,
    log: Callable[[dict], None] | None = None,  # told each epoch's record
) -> tuple[Params, list[dict]]:
    """Train with one global minibatch per step, as sync mode does; return (params, epoch log)."""
    params = init_params(list(config.layer_sizes), config.seed)
    updater = updater_of(config)
    state = updater.init_state(params)
    batcher = Batcher(images, labels, config.batch_size)
    history: list[dict] = []
    step, start = 0, time.perf_counter()
    for epoch in range(config.epochs):
        perm = schedule.epoch_permutation(config.seed, epoch, len(labels))
        loss_sum, seen = 0.0, 0
        for b in range(schedule.n_batches(len(labels), config.batch_size)):
            if max_steps and step >= max_steps:
                return params, history
            grads, loss, n = grad_sums(params, batcher, schedule.global_batch(perm, b, config.batch_size))
            updater.step(params, grads, state, n)
            loss_sum, seen, step = loss_sum + loss, seen + n, step + 1
        entry = {"epoch": epoch + 1, "train_loss": loss_sum / seen, "wall_seconds": time.perf_counter() - start}
        if test is not None:
            entry["test_accuracy"] = scores(confusion_counts(test[1], predict(params, test[0])))["accuracy"]
        history.append(entry)
        if log:
            log(entry)
    return params, history
