"""Shares of a py-spy profile by what the time went to: GEMM, the update, batching, transport, Spark start.

Reads py-spy's raw (collapsed) output, one stack a line ending in its sample count, e.g. from

    py-spy record --subprocesses --native --rate 100 --format raw -o prof.txt -- dist-mnist train ...

and prints, for the driver and for the executors' Python workers apart, each category's share of that
side's samples. A stack goes to the category of its innermost frame that matches one (from the leaf
up; within a frame, the first in the order below): GEMM inside the gradients counts as GEMM, a copy
inside `pack` as transport, numba's compile inside the update as the update (its import as imports,
like every module's). Without
--idle py-spy samples running code only: waits (a driver waiting for a round, Spark starting in the
JVM) do not show; metrics.json's phases and round_ms hold those.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter

CATEGORIES = [  # (name, pattern over one frame)
    ("Spark start", r"launch_gateway|SparkContext\.__init__|getOrCreate|_ensure_initialized"),
    ("GEMM", r"gemm|matmul"),
    ("update", r"Nesterovs\.step|Sgd\.step|nesterov_longhand|sgd_longhand|nn/fused\.py|numba/|_nesterov|_sgd"),
    ("gradients, other than GEMM", r"loss_and_grads"),
    ("batching", r"Batcher\.__call__|to_inputs"),
    ("evaluation", r"confusion_counts|^predict \(|evaluat"),
    ("data loading", r"shards?\.py|data/|parquet|pyarrow|snappy"),
    (
        "transport",
        r"channel|barrier(_tasks)?\.py|transport(s|_choice)?\.py|zmq|^pack \(|^unpack \(|Combiner|collectAndServe|py4j",
    ),
    ("imports", r"_find_and_load|^<module>"),
]
PATTERNS = [(name, re.compile(p)) for name, p in CATEGORIES]


def side(stack: str) -> str:
    """'driver' for the process that ran `train`, else 'executors' (pyspark's daemon and its workers)."""
    head = stack.split(";", 1)[0]
    return "executors" if "pyspark.daemon" in head or "pyspark/daemon" in head else "driver"


def category(stack: str) -> str:
    """The category of the innermost frame that matches one, else 'other'."""
    for frame in reversed(stack.split(";")[1:]):  # the first field names the process
        for name, p in PATTERNS:
            if p.search(frame):
                return name
    return "other"


def shares(lines) -> dict:
    """{side: {"samples": n, category: share}} from py-spy raw lines."""
    counts: dict[str, Counter] = {}
    for line in lines:
        stack, _, n = line.rstrip("\n").rpartition(" ")
        if not stack or not n.isdigit():
            continue
        name = category(stack)
        counts.setdefault(side(stack), Counter())[name] += int(n)
    out = {}
    for s, c in counts.items():
        total = sum(c.values())
        out[s] = {"samples": total, **{name: c[name] / total for name, _ in [*CATEGORIES, ("other", "")]}}
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("raw", help="py-spy record --format raw output")
    args = ap.parse_args(argv)
    with open(args.raw) as f:
        json.dump(shares(f), sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
