"""Hardware and Spark floors that bound what dist-mnist can reach on this machine.

(a) float32 GEMM throughput at the tutorial's layer-0 shapes, 1 thread and all threads;
(b) the bare Spark round: broadcast ~3.2 MB, mapPartitions with no compute, treeAggregate.
Prints one JSON object.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

# Layer 0 of the 784-1000-10 MLP at batch 128: the forward product and the dW0 product.
GEMM_SHAPES = {"forward_128x784_784x1000": ((128, 784), (784, 1000)),
               "dW0_784x128_128x1000": ((784, 128), (128, 1000))}
# FLOPs of one step at batch 128: forward (2 GEMMs) + dW0, dW1, dH (no dX for layer 0).
STEP_FLOPS = 2 * 128 * (2 * 784 * 1000 + 3 * 1000 * 10)
STEPS_PER_EPOCH = -(-60000 // 128)
ROUND_FLOATS = 800_000  # ~ the 795,010 parameters of 784-1000-10, as float32 = 3.2 MB
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def gemm_gflops(a_shape: tuple[int, int], b_shape: tuple[int, int], seconds: float) -> float:
    """Best-of-5 float32 GEMM rate in GFLOP/s, each trial running for about seconds/5."""
    rng = np.random.default_rng(0)
    A = rng.random(a_shape, dtype=np.float32)
    B = rng.random(b_shape, dtype=np.float32)
    C = np.empty((a_shape[0], b_shape[1]), dtype=np.float32)
    flops = 2 * a_shape[0] * a_shape[1] * b_shape[1]
    for _ in range(5):
        np.matmul(A, B, out=C)
    best = 0.0
    for _ in range(5):
        n, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds / 5:
            np.matmul(A, B, out=C)
            n += 1
        best = max(best, n * flops / elapsed / 1e9)
    return best


def gemm_report(threads: int, seconds: float) -> dict:
    """GEMM rates with BLAS limited to `threads`, via threadpoolctl or a child process."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        # BLAS reads its thread count once at load, so the fallback needs a fresh process.
        env = {**os.environ, **{k: str(threads) for k in BLAS_ENV}}
        out = subprocess.run([sys.executable, __file__, "--gemm-only", "--gemm-seconds", str(seconds)],
                             env=env, check=True, capture_output=True, text=True).stdout
        return json.loads(out)
    with threadpool_limits(threads, user_api="blas"):
        return {name: round(gemm_gflops(a, b, seconds), 1) for name, (a, b) in GEMM_SHAPES.items()}


def spark_round_ms(rounds: int, warmup: int, master: str) -> dict:
    """Median and spread of a no-compute broadcast -> mapPartitions -> treeAggregate round."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # `python3` on PATH may be another env
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(master).appName("floor")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "2g")
             .getOrCreate())
    sc = spark.sparkContext
    sc.setLogLevel("ERROR")
    try:
        n_parts = sc.defaultParallelism
        # Not cached: on this Spark a job over a cached Python RDD costs ~0.5 s more per round.
        rdd = sc.parallelize(range(n_parts), n_parts)
        params = np.ones(ROUND_FLOATS, dtype=np.float32)

        def add(acc, x):
            # None zero value: avoids shipping a 3.2 MB zero array with every task.
            return x if acc is None else (x if x is None else np.add(acc, x, out=acc))

        times = []
        for r in range(warmup + rounds):
            t0 = time.perf_counter()
            bc = sc.broadcast(params)

            def part_fn(_rows, bc=bc):
                yield np.array(bc.value)  # a same-sized, writable result; no compute

            total = rdd.mapPartitions(part_fn).treeAggregate(None, add, add, depth=2)
            bc.destroy()
            assert total.shape == (ROUND_FLOATS,) and total[0] == n_parts
            if r >= warmup:
                times.append((time.perf_counter() - t0) * 1000)
    finally:
        spark.stop()
    return {"master": master, "partitions": n_parts, "floats": ROUND_FLOATS, "rounds": rounds,
            "median_ms": round(statistics.median(times), 2), "min_ms": round(min(times), 2),
            "p90_ms": round(sorted(times)[int(0.9 * (len(times) - 1))], 2)}


def main(argv: list[str] | None = None) -> int:
    """Measure both floors and print them as one JSON object."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--gemm-seconds", type=float, default=2.0, help="time per shape and thread count")
    p.add_argument("--skip-spark", action="store_true")
    p.add_argument("--gemm-only", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--json-out")
    args = p.parse_args(argv)
    if args.gemm_only:  # child of the no-threadpoolctl fallback: thread count comes from env
        print(json.dumps({n: round(gemm_gflops(a, b, args.gemm_seconds), 1) for n, (a, b) in GEMM_SHAPES.items()}))
        return 0

    all_threads = os.cpu_count() or 1
    gemm = {"threads_1": gemm_report(1, args.gemm_seconds),
            f"threads_{all_threads}": gemm_report(all_threads, args.gemm_seconds)}
    best = max(max(v.values()) for v in gemm.values())
    result = {"system": "floor", "gemm_gflops": gemm,
              "step_gflop": round(STEP_FLOPS / 1e9, 3),
              # Lower bound on one epoch's compute on one core at the best measured rate.
              "epoch_gemm_seconds_at_best": round(STEPS_PER_EPOCH * STEP_FLOPS / (best * 1e9), 2)}
    if not args.skip_spark:
        result["spark_round"] = spark_round_ms(args.rounds, args.warmup, args.master)
    line = json.dumps(result)
    print(line, flush=True)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
