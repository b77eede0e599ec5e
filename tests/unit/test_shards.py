"""Worker shards: W contiguous ranges of the global row order, read from any file layout."""

from __future__ import annotations

import numpy as np
import pytest

from dist_mnist.data.parquet import read_segments
from dist_mnist.data.shards import Segment, plan_shards, worker_ranges

from ..support.datasets import write_parts
from ..support.fakes import unique_images


@pytest.mark.parametrize("n, W", [(10, 1), (10, 3), (10, 4), (7, 7), (60000, 16), (5, 8)])
def test_worker_ranges_are_array_split(n, W):
    expected = [(int(r[0]), int(r[-1]) + 1) if len(r) else None for r in np.array_split(np.arange(n), W)]
    got = worker_ranges(n, W)
    assert [(lo, hi) if hi > lo else None for lo, hi in got] == expected
    assert got[0][0] == 0 and got[-1][1] == n


def test_a_file_split_between_workers_and_a_worker_spanning_files():
    shards = plan_shards(("a", "b", "c"), (4, 2, 4), 3)  # 10 rows: workers get 4, 3, 3
    assert [s.segments for s in shards] == [
        (Segment("a", 0, 4),),
        (Segment("b", 0, 2), Segment("c", 0, 1)),
        (Segment("c", 1, 4),),
    ]
    assert [(s.first, s.n) for s in shards] == [(0, 4), (4, 3), (7, 3)]


@pytest.mark.parametrize("sizes", [(50,), (17, 16, 17), (10, 15, 5, 20), (7, 7, 7, 7, 7, 7, 8)])
@pytest.mark.parametrize("W", [1, 3, 4])
def test_shards_hold_the_same_rows_whatever_the_files(tmp_path, sizes, W):
    images, labels = unique_images(50), (np.arange(50) % 10).astype(np.uint8)
    files = write_parts(tmp_path, images, labels, sizes, row_group_size=4)  # ranges cut row groups too
    for shard, rows in zip(plan_shards(files, sizes, W), np.array_split(np.arange(50), W)):
        got_images, got_labels = read_segments(shard.segments)
        np.testing.assert_array_equal(got_images, images[rows])
        np.testing.assert_array_equal(got_labels, labels[rows])


def test_a_bad_row_is_named_by_its_row_in_the_file(tmp_path):
    images, labels = unique_images(8), np.zeros(8, np.uint8)
    labels[6] = 12
    (path,) = write_parts(tmp_path, images, labels, (8,))
    with pytest.raises(ValueError, match=r"part-00000.parquet: label 12 at row 6 is outside"):
        read_segments([(path, 5, 8)])
