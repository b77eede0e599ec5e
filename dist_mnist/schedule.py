"""Which examples each step uses, as a pure function of (seed, epoch, round, partition).

Nothing here draws from process-global random state: a retried Spark task, or the
single-process reference, computes exactly the same indices.
"""

from __future__ import annotations

import math

import numpy as np

# One random stream per purpose. NumPy's SeedSequence ignores trailing zero words, so every
# id is offset by one: [seed, purpose, epoch + 1, partition + 1] never collides across purposes.
INIT, INGEST, SYNC_ORDER, LOCAL_ORDER = 1, 2, 3, 4


def rng(seed: int, purpose: int, *ids: int) -> np.random.Generator:
    """The generator of one purpose (INIT, INGEST, ...) and its ids (epoch, partition, ...)."""
    return np.random.default_rng([seed, purpose, *(i + 1 for i in ids)])


def epoch_permutation(seed: int, epoch: int, n: int, partition: int = -1) -> np.ndarray:
    """A permutation of range(n) for one epoch; partition -1 is the global (sync) order."""
    if partition < 0:
        return rng(seed, SYNC_ORDER, epoch).permutation(n)
    return rng(seed, LOCAL_ORDER, epoch, partition).permutation(n)


def n_batches(n: int, batch_size: int) -> int:
    """Minibatches in one pass over n examples; the last one may be partial, as in DL4J."""
    return math.ceil(n / batch_size)


def global_batch(perm: np.ndarray, step: int, batch_size: int) -> np.ndarray:
    """Global row indices of minibatch `step` in sync mode."""
    return perm[step * batch_size : (step + 1) * batch_size]


def rounds_per_epoch_average(partition_sizes: list[int], batch_size: int, k: int) -> int:
    """Rounds an epoch takes when each partition runs k local steps a round."""
    return math.ceil(max(n_batches(n, batch_size) for n in partition_sizes) / k)


def local_batches(perm: np.ndarray, round_in_epoch: int, batch_size: int, k: int) -> list[np.ndarray]:
    """Local row indices of the (up to k) minibatches a partition runs in this round."""
    first = round_in_epoch * k
    last = min(first + k, n_batches(len(perm), batch_size))
    return [perm[s * batch_size : (s + 1) * batch_size] for s in range(first, last)]
