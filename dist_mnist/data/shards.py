"""Which rows each worker holds: W contiguous, near-equal ranges of a split's global row order.

A split is a list of Parquet part files whose rows, file after file, are the global order.
Worker w holds the w-th of W ranges (`np.array_split` semantics), read as row ranges of
whatever files it overlaps: a file may be split between workers and a worker may span
files, so the shards, and the model, do not depend on how the data was written.
No Spark here.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np


class Segment(NamedTuple):
    """Rows [start, stop) of one part file."""

    file: str
    start: int
    stop: int


class Shard(NamedTuple):
    """One worker's rows: global rows [first, first + n) as file segments."""

    first: int
    n: int
    segments: tuple[Segment, ...]


def worker_ranges(n_rows: int, workers: int) -> list[tuple[int, int]]:
    """[lo, hi) of each worker: the first n_rows % W workers get one row more (array_split)."""
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    base, extra = divmod(n_rows, workers)
    bounds = np.cumsum([0] + [base + (w < extra) for w in range(workers)])
    return [(int(bounds[w]), int(bounds[w + 1])) for w in range(workers)]


def plan_shards(files: tuple[str, ...], rows: tuple[int, ...], workers: int) -> tuple[Shard, ...]:
    """The shard of every worker over part files with these row counts, in order."""
    starts = np.cumsum((0, *tuple(rows)))  # global index of each file's first row
    shards = []
    for lo, hi in worker_ranges(int(starts[-1]), workers):
        segments = []
        for f, (a, b) in zip(files, itertools.pairwise(starts)):
            s, e = max(lo, a), min(hi, b)
            if s < e:
                segments.append(Segment(f, int(s - a), int(e - a)))
        shards.append(Shard(lo, hi - lo, tuple(segments)))
    return tuple(shards)
