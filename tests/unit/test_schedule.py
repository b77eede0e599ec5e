"""Data order: deterministic permutations, and every row used once per epoch."""

import numpy as np
import pytest

from dist_mnist import schedule


def test_epoch_permutation_is_a_deterministic_permutation():
    p = schedule.epoch_permutation(123, 0, 1000)
    np.testing.assert_array_equal(np.sort(p), np.arange(1000))
    np.testing.assert_array_equal(p, schedule.epoch_permutation(123, 0, 1000))
    assert not np.array_equal(p, schedule.epoch_permutation(123, 1, 1000))  # new epoch
    assert not np.array_equal(p, schedule.epoch_permutation(124, 0, 1000))  # new seed


def test_partition_permutations_differ_by_partition_and_from_global():
    g = schedule.epoch_permutation(7, 2, 500)
    p0 = schedule.epoch_permutation(7, 2, 500, partition=0)
    p1 = schedule.epoch_permutation(7, 2, 500, partition=1)
    np.testing.assert_array_equal(p0, schedule.epoch_permutation(7, 2, 500, partition=0))
    np.testing.assert_array_equal(np.sort(p1), np.arange(500))
    assert not np.array_equal(p0, p1) and not np.array_equal(g, p1)


def test_random_streams_of_different_purposes_are_distinct():
    # NumPy's SeedSequence ignores trailing zero words; the stream keys must not collide anyway
    streams = [
        schedule.epoch_permutation(7, 0, 500),
        schedule.epoch_permutation(7, 0, 500, partition=0),
        schedule.rng(7, schedule.INIT).permutation(500),
        schedule.rng(7, schedule.INGEST, 0).permutation(500),
        np.random.default_rng(7).permutation(500),
    ]
    for i in range(len(streams)):
        for j in range(i):
            assert not np.array_equal(streams[i], streams[j]), (i, j)


def test_permutation_does_not_touch_global_random_state():
    np.random.seed(0)
    expected = np.random.rand()
    np.random.seed(0)
    schedule.epoch_permutation(1, 0, 100)
    assert np.random.rand() == expected


@pytest.mark.parametrize("n, batch", [(1000, 128), (1024, 128), (5, 8), (129, 128)])
def test_sync_batches_cover_every_row_once(n, batch):
    perm = schedule.epoch_permutation(3, 0, n)
    steps = schedule.n_batches(n, batch)
    batches = [schedule.global_batch(perm, s, batch) for s in range(steps)]
    assert all(len(b) == batch for b in batches[:-1])
    assert len(batches[-1]) == n - batch * (steps - 1) > 0  # the partial last batch, as in DL4J
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(n))
    assert len(schedule.global_batch(perm, steps, batch)) == 0


def test_n_batches():
    assert schedule.n_batches(60000, 128) == 469
    assert schedule.n_batches(128, 128) == 1
    assert schedule.n_batches(129, 128) == 2


@pytest.mark.parametrize("n, batch, k", [(100, 32, 3), (100, 32, 4), (100, 32, 1), (64, 32, 5)])
def test_local_batches_over_rounds_cover_the_shard_once(n, batch, k):
    perm = schedule.epoch_permutation(9, 1, n, partition=2)
    rounds = schedule.rounds_per_epoch_average([n], batch, k)
    per_round = [schedule.local_batches(perm, r, batch, k) for r in range(rounds)]
    assert all(1 <= len(bs) <= k for bs in per_round)
    rows = np.concatenate([b for bs in per_round for b in bs])
    np.testing.assert_array_equal(np.sort(rows), np.arange(n))
    assert schedule.local_batches(perm, rounds, batch, k) == []


def test_rounds_per_epoch_average_follows_the_largest_partition():
    # 100 rows / 32 -> 4 batches; 60 rows -> 2 batches; k=2 -> 2 rounds
    assert schedule.rounds_per_epoch_average([100, 60], 32, 2) == 2
    assert schedule.rounds_per_epoch_average([100, 60], 32, 3) == 2
    assert schedule.rounds_per_epoch_average([100, 60], 32, 4) == 1
    assert schedule.rounds_per_epoch_average([30000, 30000], 128, 117) == 3  # 235 batches
