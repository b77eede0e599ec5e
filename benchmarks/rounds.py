"""The bare round of each transport, side by side in one Spark application.

A bare round sends the 784-1000-10 parameters (795,010 float32, 3.2 MB) to each of W workers
and gets 3.2 MB of sums back from each, with no compute: what a round costs beyond the
math. The same driver code runs it as in training (the transports' run_round and their
combine in worker order); only the worker's compute is replaced by returning zeros.

    spark-submit --master 'local[2]' benchmarks/rounds.py --workers 2 --rounds 200 --out benchmarks/results

Prints one JSON object and, with --out, writes OUT/rounds-W{W}.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from dist_mnist.files.atomic import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pyspark.sql import SparkSession  # noqa: E402

from dist_mnist.channel.worker import serve_rounds  # noqa: E402
from dist_mnist.config import TrainConfig  # noqa: E402
from dist_mnist.data.shards import Shard  # noqa: E402
from dist_mnist.nn.flat import layout_of  # noqa: E402
from dist_mnist.nn.model import init_params  # noqa: E402
from dist_mnist.rounds import Combiner, Plan, RoundResult, RoundSpec  # noqa: E402
from dist_mnist.spark.barrier import BarrierTransport  # noqa: E402
from dist_mnist.spark.cluster import Cluster  # noqa: E402
from dist_mnist.spark.session import get_context  # noqa: E402


def bare_plan(workers: int) -> Plan:
    """A sync-mode plan of the tutorial's network; the shards are never read."""
    config = TrainConfig(mode="sync", workers=workers)
    layout = layout_of(init_params(list(config.layer_sizes), config.seed))
    empty = tuple(Shard(0, 0, ()) for _ in range(workers))
    return Plan(config, empty, empty, layout)


def bare_task(plan: Plan, endpoint, generation: int):
    """The barrier task of BarrierTransport, answering every round with zeros of the sent size."""

    def task(batches):
        import pyarrow as pa
        from pyspark import BarrierTaskContext

        for _ in batches:
            pass
        w = BarrierTaskContext.get().partitionId()
        serve_rounds(
            endpoint,
            {"generation": generation, "worker": w, "pid": os.getpid()},
            lambda flat, spec: RoundResult(np.zeros(len(flat), np.float32), 0.0, 0, {w: 0.0}),
        )
        yield pa.RecordBatch.from_pydict({"w": pa.array([w], pa.int32())})

    return task


def spark_job_round(sc, rdd, flat: np.ndarray) -> RoundResult:
    """RddJobTransport's round with the compute replaced: broadcast, map, collect, combine."""
    bc = sc.broadcast(flat)
    n = len(flat)
    results = rdd.mapPartitionsWithIndex(
        lambda w, _: [RoundResult(np.zeros(n, np.float32), 0.0, 0, {w: 0.0})]
    ).collect()
    bc.destroy()
    combiner = Combiner()
    for r in results:
        combiner.add(r)
    return combiner.result()


def timed(fn, rounds: int) -> list[float]:
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t0))
    return out


def summary(ms: list[float], warmup: int) -> dict:
    kept = ms[warmup:]
    return {
        "median_ms": round(statistics.median(kept), 3),
        "p90_ms": round(float(np.percentile(kept, 90)), 3),
        "min_ms": round(min(kept), 3),
        "rounds": len(kept),
        "first_ms": round(ms[0], 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=200, help="barrier rounds")
    p.add_argument(
        "--jobs-rounds", type=int, default=-1, help="Spark-job rounds (default a tenth, at least 20; 0: none)"
    )
    p.add_argument("--floats", type=int, default=0, help="payload floats each way (default: the 795,010 parameters)")
    p.add_argument("--out", help="directory for rounds-W{W}.json")
    args = p.parse_args()
    sc = get_context("dist-mnist-bench-rounds")
    W = args.workers
    plan = bare_plan(W)
    flat = init_params(list(plan.config.layer_sizes), 0)
    flat = np.concatenate([v.ravel() for v in flat.values()]).astype(np.float32)
    if args.floats:
        flat = np.resize(flat, args.floats)

    rdd = sc.parallelize(range(W), W)
    n_jobs = max(20, args.rounds // 10) if args.jobs_rounds < 0 else args.jobs_rounds
    jobs = timed(lambda: spark_job_round(sc, rdd, flat), n_jobs) if n_jobs else []
    transport = BarrierTransport(Cluster(SparkSession(sc)), plan, timeout=120, log=lambda *_: None, make_task=bare_task)
    try:
        barrier = timed(lambda: transport.run_round(flat, RoundSpec(0, 0)), args.rounds)
    finally:
        transport.close()
    result = {
        "workers": W,
        "master": sc.master,
        "payload_bytes_each_way": int(flat.nbytes),
        "jobs": summary(jobs, 3) if jobs else None,
        "barrier": summary(barrier, 10),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "command": f"spark-submit --master '{sc.master}' benchmarks/rounds.py " + " ".join(sys.argv[1:]),
    }
    if jobs:
        result["ratio_barrier_to_jobs"] = round(result["barrier"]["median_ms"] / result["jobs"]["median_ms"], 4)
    print(json.dumps(result), flush=True)
    if args.out:
        path = Path(args.out) / f"rounds-W{W}.json"
        atomic_write_json(path, result)
    sc.stop()


if __name__ == "__main__":
    main()
