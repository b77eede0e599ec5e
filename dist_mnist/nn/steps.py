"""The work of one round on one shard of data, in pure NumPy.

Both the single-process reference trainer and the Spark executors call these, so the two
compute the same thing by construction. Shards are uint8 images (n, 784) and labels (n,).
"""

from __future__ import annotations

import numpy as np

from dist_mnist.nn.model import Params, loss_and_grads, to_inputs


class Batcher:
    """Turns uint8 rows into float32 minibatches through one preallocated buffer."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, batch_size: int):
        self.images, self.labels = images, labels
        self.buf = np.empty((batch_size, images.shape[1]), dtype=np.float32)

    def __call__(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(X float32 (b, 784), y (b,)) for the given row indices."""
        return to_inputs(self.images[rows], out=self.buf), self.labels[rows]


def grad_sums(params: Params, batcher: Batcher, rows: np.ndarray) -> tuple[Params, float, int]:
    """Summed gradients, loss sum and count over the given rows (sync mode)."""
    X, y = batcher(rows)
    return loss_and_grads(params, X, y)


def local_steps(
    params: Params, state: Params, updater, batcher: Batcher, batches: list[np.ndarray]
) -> tuple[float, int]:
    """Run one updater step per minibatch, in place; return (loss sum, examples seen)."""
    loss_sum, seen = 0.0, 0
    for rows in batches:
        X, y = batcher(rows)
        grads, loss, n = loss_and_grads(params, X, y)
        updater.step(params, grads, state, n)
        loss_sum += loss
        seen += n
    return loss_sum, seen
