"""Calibrate the cost model of one dist-mnist round (docs/scaling.md) and predict larger clusters.

For W = 1, 2, 4 executors (`local-cluster[W,1,1024]`: one executor JVM each; `local[W]` if that
cannot start) it measures, on a W-partition RDD:
  (a) the bare round: sc.broadcast of S bytes, mapPartitions returning S bytes of float32 and
      a small float64 vector, treeAggregate with the trainer's depth and combine; S = 0,
      3.18 MB (sync: params) and 6.36 MB (average: params + Nesterov state); then the same
      round with one forced reduceByKey level, for the cost of a shuffle stage;
  (b) t_step, one local Nesterov step of 128 rows inside a task with one BLAS thread, alone
      and with W tasks at once, and the forward pass per test row (the epoch's evaluation);
  (c) full trainer rounds (rounds.compute_round, k local steps, apply_round), to check the sum;
and on the driver the packing and the update. It fits the model, prints measured vs model and
the predictions for a 10 Gbit/s cluster, and writes benchmarks/results/scaling.json (~4 min).
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from dist_mnist.config import TrainConfig
from dist_mnist.nn.flat import layout_of, pack
from dist_mnist.nn.model import init_params, predict
from dist_mnist.nn.steps import Batcher, local_steps
from dist_mnist.nn.updaters import Nesterovs
from dist_mnist.rounds import Plan, RoundSpec, TrainingArrays, apply_round, round_input
from dist_mnist.shards import Segment, Shard
from dist_mnist.spark.jobs import SparkJobTransport
from dist_mnist.spark.shard_cache import get_shard

SMALL_HEAD = 3  # the old round's small vector: loss, examples, shard bytes


def combine(a, b):
    """treeAggregate's combine of (float32 vector, small float64 vector) pairs, in float64."""
    if a is None:
        return b
    if b is None:
        return a
    vec = a[0] if a[0].dtype == np.float64 else a[0].astype(np.float64)
    vec += b[0]
    return vec, a[1] + b[1]

N_TRAIN, N_TEST, BATCH = 60_000, 10_000, 128
LAYERS = [784, 1000, 10]
N_PARAMS = 795_010  # 784*1000 + 1000 + 1000*10 + 10
# ~0, sync (params), average (params + state), and 4x average: a lever arm for the per-byte slopes
PAYLOAD_FLOATS = (1, N_PARAMS, 2 * N_PARAMS, 8 * N_PARAMS)
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
PREDICT_WS = (1, 2, 4, 8, 16, 32, 64)
PREDICT_KS = (16, 64, 235)


def trainer_depth(W: int) -> int:
    """treeAggregate depth of trainer.train for W partitions."""
    return max(2, math.ceil(math.log(max(W, 2), 8)) + 1)


def tree_levels(P: int, depth: int) -> tuple[list[int], int]:
    """Fan-in of each reduceByKey level PySpark's treeAggregate builds, and the number of
    partial results the driver finally collects (pyspark/core/rdd.py, treeAggregate)."""
    scale = max(math.ceil(P ** (1.0 / depth)), 2)
    n, parts, fan_ins = float(P), P, []
    while n > scale + n / scale:
        n /= scale
        fan_ins.append(math.ceil(parts / int(n)))
        parts = int(n)
    return fan_ins, parts


def start_context(W: int, kind: str):
    """A SparkContext with W one-core executors; waits until they have all registered."""
    from pyspark import SparkConf, SparkContext

    master = f"local-cluster[{W},1,1024]" if kind == "local-cluster" else f"local[{W}]"
    conf = (SparkConf().setMaster(master).setAppName(f"scaling-W{W}")
            .set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false")
            .set("spark.executor.memory", "768m").set("spark.driver.memory", "2g"))
    for var in BLAS_ENV:
        conf.set(f"spark.executorEnv.{var}", "1")
    sc = SparkContext(conf=conf)
    sc.setLogLevel("ERROR")
    deadline = time.monotonic() + 90
    while kind == "local-cluster" and sc._jsc.sc().getExecutorMemoryStatus().size() < W + 1:
        if time.monotonic() > deadline:
            sc.stop()
            raise RuntimeError(f"{master}: executors did not register within 90 s")
        time.sleep(0.5)
    return sc


def load_shard(path: str):
    """The shard at `path` (resident per Python worker), or MNIST-like synthetic uint8 rows."""
    if os.path.exists(path):
        return get_shard([(path, 0, None)])
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30_000, 784), dtype=np.uint8)
    images[:, :262] = 0  # about a third of MNIST's columns are 0 in a whole minibatch
    return images, rng.integers(0, 10, 30_000).astype(np.uint8)


def make_payload_fn(bc):
    """A partition function that returns a copy of the broadcast (S bytes) and a small vector."""
    def run(_rows):
        yield np.array(bc.value), np.ones(SMALL_HEAD, np.float64)
    return run


def one_level(mapped, n_out: int):
    """treeAggregate with one forced reduceByKey level into n_out partitions, built the way
    PySpark builds each level when W > scale + W / scale (never for W <= 4)."""
    def partial(it):
        acc = None
        for x in it:
            acc = combine(acc, x)
        yield acc

    def keyed(i, it):
        for x in it:
            yield i % n_out, x

    return mapped.mapPartitions(partial).mapPartitionsWithIndex(keyed).reduceByKey(combine, n_out).values().reduce(combine)


def driver_cpu_s(sc) -> float:
    """CPU seconds the driver has used so far: this Python process and its JVM (not children)."""
    with open(f"/proc/{sc._gateway.proc.pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # fields[11], [12]: utime, stime in ticks
    t = os.times()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK") + t.user + t.system


def bare_rounds(sc, W: int, payloads: tuple[int, ...], rounds: int, warmup: int, shuffle_to: int = 0) -> list[dict]:
    """Median broadcast, job and destroy seconds of the no-compute round, for each payload size;
    the sizes take turns round by round, so a drift in the machine's load hits them all alike."""
    rdd = sc.parallelize(range(W), W)  # not cached, as in the trainer
    times = {n: ([], [], [], []) for n in payloads}
    for r in range(warmup + rounds):
        for n in payloads:
            cpu0 = driver_cpu_s(sc)
            t0 = time.perf_counter()
            bc = sc.broadcast(np.ones(n, np.float32))
            t1 = time.perf_counter()
            mapped = rdd.mapPartitions(make_payload_fn(bc))
            vec, small = one_level(mapped, shuffle_to) if shuffle_to else mapped.treeAggregate(None, combine, combine, trainer_depth(W))
            t2 = time.perf_counter()
            bc.destroy()
            t3 = time.perf_counter()
            assert small[0] == W and vec[0] == W and len(vec) == n
            if r >= warmup:
                for acc, t in zip(times[n], (t1 - t0, t2 - t1, t3 - t2, driver_cpu_s(sc) - cpu0)):
                    acc.append(t)
    med = statistics.median
    return [{"W": W, "bytes": 4 * n, "shuffle_to": shuffle_to, "broadcast_s": med(bc_s), "job_s": med(job_s),
             "job_p25_s": statistics.quantiles(job_s, n=4)[0], "job_p75_s": statistics.quantiles(job_s, n=4)[2],
             "destroy_s": med(destroy_s), "driver_cpu_s": med(cpu_s)} for n, (bc_s, job_s, destroy_s, cpu_s) in times.items()]


def task_cost(sc, W: int, reps: int = 7) -> dict:
    """What each extra task adds to a tiny job: wall seconds with the W executors busy (bound by
    the executors on 2 cores), and the driver's CPU seconds (its serial share on a cluster)."""
    def tiny(_rows):
        yield np.ones(SMALL_HEAD, np.float64)

    def job(P: int) -> tuple[float, float]:
        wall, cpu = [], []
        for _ in range(reps + 2):
            t0, c0 = time.perf_counter(), driver_cpu_s(sc)
            sc.parallelize(range(P), P).mapPartitions(tiny).collect()
            wall.append(time.perf_counter() - t0)
            cpu.append(driver_cpu_s(sc) - c0)
        return statistics.median(wall[2:]), statistics.median(cpu[2:])

    (w_small, c_small), (w_big, c_big) = job(W), job(32)
    return {"wall_s": (w_big - w_small) / (32 - W), "driver_cpu_s": (c_big - c_small) / (32 - W)}


def make_step_fn(shard: str, steps: int, warmup: int, eval_rows: int, start_at: float):
    """A partition function that times `steps` local steps (median) and the forward pass per row.

    Every task waits for the wall-clock time start_at (one machine, one clock), so W tasks time
    their steps while all W run, not while a late one is still starting.
    """
    def run(_rows):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="blas"):
            images, labels = load_shard(shard)
            params = init_params(LAYERS, 123)
            updater = Nesterovs(0.006, 0.9, 1e-4)
            state = updater.init_state(params)
            batcher = Batcher(images, labels, BATCH)
            perm = np.random.default_rng(0).permutation(len(labels))
            batches = [perm[i * BATCH:(i + 1) * BATCH] for i in range(warmup + steps)]
            local_steps(params, state, updater, batcher, batches[:warmup])
            late = time.time() > start_at
            time.sleep(max(0.0, start_at - time.time()))
            times = []
            for rows in batches[warmup:]:
                t0 = time.perf_counter()
                local_steps(params, state, updater, batcher, [rows])
                times.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            predict(params, images[:eval_rows])
            t_row = (time.perf_counter() - t0) / eval_rows
        yield float(np.median(times)), t_row, os.path.exists(shard), late
    return run


def step_times(sc, W: int, shard: str, steps: int) -> dict:
    """t_step alone (one task) and with W tasks at once, and the forward pass per test row."""
    out = {}
    for label, n_tasks in (("alone", 1), ("concurrent", W)):
        fn = make_step_fn(shard, steps, warmup=5, eval_rows=2000, start_at=time.time() + 3.0)
        res = sc.parallelize(range(n_tasks), n_tasks).mapPartitions(fn).collect()
        out[f"late_tasks_{label}"] = sum(r[3] for r in res)
        out[f"t_step_{label}_s"] = statistics.median(r[0] for r in res)
        out[f"t_pred_row_{label}_s"] = statistics.median(r[1] for r in res)
        out["real_shard"] = all(r[2] for r in res)
    return out


def full_rounds(sc, W: int, shard: str, k: int, rounds: int, warmup: int) -> dict:
    """Median seconds of real trainer rounds (average mode, k local steps) on W workers, one Spark
    job a round (SparkJobTransport), each worker on the same 30,000-row shard file."""
    config = TrainConfig(averaging_frequency=k, workers=W, lr_scaling="none")
    arrays = TrainingArrays.new(config)
    shards = tuple(Shard(0, 30_000, (Segment(shard, 0, 30_000),)) for _ in range(W))
    plan = Plan(config, shards, tuple(Shard(0, 0, ()) for _ in range(W)), layout_of(arrays.params))
    transport, times = SparkJobTransport(sc, plan), []
    for r in range(warmup + rounds):
        t0 = time.perf_counter()
        # round 0 of epoch r: the first k minibatches of that epoch's order
        result = transport.run_round(round_input(plan, arrays.params, arrays.state), RoundSpec(r, 0))
        apply_round(plan, arrays, result)
        if r >= warmup:
            times.append(time.perf_counter() - t0)
    return {"W": W, "k": k, "round_s": statistics.median(times)}


def driver_times(reps: int = 20) -> dict:
    """Median seconds of the driver's pack (params + state) and its update from the sums."""
    from dist_mnist.rounds import RoundResult

    config = TrainConfig(workers=2)
    arrays = TrainingArrays.new(config)
    params, state = arrays.params, arrays.state
    plan = Plan(config, (), (), layout_of(params))
    vec = np.random.default_rng(0).standard_normal(2 * N_PARAMS) * 1e-4 * N_TRAIN  # n * deltas, float64
    t_pack, t_update = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        np.concatenate([pack(params), pack(state)])
        t1 = time.perf_counter()
        apply_round(plan, arrays, RoundResult(vec, 0.0, N_TRAIN))
        t_pack.append(t1 - t0)
        t_update.append(time.perf_counter() - t1)
    return {"pack_s": statistics.median(t_pack), "update_s": statistics.median(t_update)}


def lstsq(X: list[list[float]], y: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares coefficients and residuals (measured - model)."""
    X, y = np.asarray(X, float), np.asarray(y, float)
    coef = np.linalg.lstsq(X, y, rcond=None)[0]
    return coef, y - X @ coef


def fit(bare: list[dict], shuffled: list[dict], driver: dict, t_task: float) -> tuple[dict, dict]:
    """The model's constants (seconds, seconds per byte) and the residuals of each fit."""
    bc, r_bc = lstsq([[1, b["bytes"]] for b in bare], [b["broadcast_s"] for b in bare])
    job, r_job = lstsq([[1, b["W"], b["bytes"], b["W"] * b["bytes"]] for b in bare], [b["job_s"] for b in bare])
    c = {"a_bcast_s": bc[0], "c_bcast_s_per_byte": bc[1], "a_sched_s": job[0], "b_sched_s_per_worker": job[1],
         "c_task_s_per_byte": job[2], "c_recv_s_per_byte": job[3]}
    # the forced level's extra over the plain model: t_stage + fan_in * S * c_shuf; the driver
    # collects n_out float64 partial sums (2S bytes each) instead of W float32 results
    base = [job_model(c, s["W"], s["bytes"], [], s["shuffle_to"], 2 * s["bytes"]) for s in shuffled]
    sh, r_sh = lstsq([[1, math.ceil(s["W"] / s["shuffle_to"]) * s["bytes"]] for s in shuffled],
                     [s["job_s"] - b for s, b in zip(shuffled, base)])
    # a check that 2 cores cannot distort: the driver's own CPU per byte it collects
    cpu, _ = lstsq([[1, b["W"] * b["bytes"]] for b in bare], [b["driver_cpu_s"] for b in bare])
    c.update({"t_stage_s": sh[0], "c_shuf_s_per_byte": sh[1], "t_driver_s": driver["pack_s"] + driver["update_s"],
              "t_task_s": t_task, "driver_cpu_s_per_collected_byte": cpu[1]})
    c = {k: float(v) for k, v in c.items()}
    residuals = {"broadcast_s": r_bc.tolist(), "job_s": r_job.tolist(), "shuffle_level_s": r_sh.tolist()}
    return c, residuals


def job_model(c: dict, W: int, S: float, fan_ins: list[int], final: int, final_bytes: float,
              wire_s_per_byte: float = 0.0, torrent_hops: int = 0, per_worker_s: float | None = None) -> float:
    """Seconds of mapPartitions + treeAggregate: scheduling, per-task bytes, levels, collect."""
    a, b = c["a_sched_s"], c["b_sched_s_per_worker"]
    # the loopback fit; or anchored at one worker, each further one adding per_worker_s
    t = a + b * W if per_worker_s is None else a + b + per_worker_s * (W - 1)
    t += S * c["c_task_s_per_byte"] + torrent_hops * S * wire_s_per_byte
    size = S
    for f in fan_ins:
        t += c.get("t_stage_s", 0.0) + f * size * (c.get("c_shuf_s_per_byte", 0.0) + wire_s_per_byte)
        size = 2 * S  # float64 partial sums after the first combine
    return t + final * final_bytes * (c["c_recv_s_per_byte"] + wire_s_per_byte)


def round_overhead(c: dict, W: int, S: float, wire_bps: float | None, pessimistic: bool = False) -> float:
    """Everything in a round but the k local steps: broadcast, job, aggregation, update.

    wire_bps None: this machine's loopback, with the fitted per-worker cost (the calibration).
    Otherwise a cluster: every byte moved also crosses a network of that bandwidth, the torrent
    broadcast needs ceil(log2(W+1)) hops, and each worker adds the driver's measured per-task
    cost, or with `pessimistic` the loopback fit's per-worker slope (2 cores oversubscribed).
    """
    fan_ins, final = tree_levels(W, trainer_depth(W))
    wire = 1.0 / wire_bps if wire_bps else 0.0
    hops = math.ceil(math.log2(W + 1)) if wire_bps else 0
    per_worker = None if (wire_bps is None or pessimistic) else c["t_task_s"]
    final_bytes = 2 * S if fan_ins else S
    return (c["a_bcast_s"] + S * c["c_bcast_s_per_byte"]
            + job_model(c, W, S, fan_ins, final, final_bytes, wire, hops, per_worker) + c["t_driver_s"])


def epoch(c: dict, W: int, k: int, t_step: float, t_row: float, wire_bps: float, scale: int = 1,
          pessimistic: bool = False) -> dict:
    """Predicted epoch: rounds * overhead + the largest shard's steps + its share of the test set."""
    steps = math.ceil(math.ceil(scale * N_TRAIN / W) / BATCH)
    rounds = math.ceil(steps / k)
    overhead = round_overhead(c, W, 8.0 * N_PARAMS, wire_bps, pessimistic)
    seconds = rounds * overhead + steps * t_step + math.ceil(scale * N_TEST / W) * t_row
    return {"W": W, "k": k, "data_scale": scale, "steps_per_worker": steps, "rounds": rounds,
            "round_overhead_s": overhead, "epoch_s": seconds}


def limits(c: dict, t_step: float, t_row: float, wire_bps: float) -> list[dict]:
    """For 1x, 10x, 100x MNIST: k_min(W), the last W whose share of steps still reaches it, and
    the W (and speed-up) with the shortest epoch when each worker runs its share in one round."""
    out = []
    for scale in (1, 10, 100):
        ws = range(1, 2049)
        k_min = {W: math.ceil(round_overhead(c, W, 8.0 * N_PARAMS, wire_bps) / t_step) for W in ws}
        share = {W: math.ceil(math.ceil(scale * N_TRAIN / W) / BATCH) for W in ws}
        w_stop = max((W for W in ws if share[W] >= k_min[W]), default=0)
        times = {W: epoch(c, W, share[W], t_step, t_row, wire_bps, scale)["epoch_s"] for W in ws}
        w_best = min(times, key=times.get)
        out.append({"data_scale": scale, "steps_per_epoch": share[1], "w_stop": w_stop, "k_min_at_w_stop": k_min.get(w_stop),
                    "w_fastest": w_best, "epoch_s_fastest": times[w_best], "speedup_fastest": times[1] / times[w_best],
                    "k_min": {str(W): k_min[W] for W in PREDICT_WS}})
    return out


def main(argv: list[str] | None = None) -> int:
    """Measure W = 1, 2, 4, fit, predict, print the tables and write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", default="1,2,4")
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--steps", type=int, default=60, help="timed local steps per task")
    p.add_argument("--full-ks", default="32,128", help="k of the full trainer rounds that check the model")
    p.add_argument("--shard", default="/tmp/d2/train/part-00000.parquet", help="synthetic rows if missing")
    p.add_argument("--master-kind", choices=("local-cluster", "local"), default="local-cluster")
    p.add_argument("--wire-gbit", type=float, default=10.0)
    p.add_argument("--json-out", default=str(Path(__file__).parent / "results" / "scaling.json"))
    args = p.parse_args(argv)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    wire_bps = args.wire_gbit * 1e9 / 8

    load = {"before": os.getloadavg()}
    driver = driver_times()
    bare, shuffled, steps, full, masters, tasks = [], [], {}, [], {}, {}
    for W in (int(w) for w in args.workers.split(",")):
        try:
            sc, masters[W] = start_context(W, args.master_kind), args.master_kind
        except Exception as e:  # local-cluster needs a runnable Spark distribution beside pyspark
            print(f"W={W}: {args.master_kind} failed ({str(e).splitlines()[0]}); using local[{W}]", flush=True)
            sc, masters[W] = start_context(W, "local"), "local"
        try:
            bare += bare_rounds(sc, W, PAYLOAD_FLOATS, args.rounds, args.warmup)
            # the forced level needs only the ends of the range to fit t_stage and its slope
            ends = (PAYLOAD_FLOATS[0], PAYLOAD_FLOATS[-1])
            if W > 1:  # a level has fan-in >= 2; W // 2 receivers of 2 results each
                shuffled += bare_rounds(sc, W, ends, args.rounds, args.warmup, shuffle_to=W // 2)
            tasks[W] = task_cost(sc, W)
            steps[W] = step_times(sc, W, args.shard, args.steps)
            full += [full_rounds(sc, W, args.shard, int(k), rounds=4, warmup=1) for k in args.full_ks.split(",")]
        finally:
            sc.stop()
        load[f"after_W{W}"] = os.getloadavg()
        print(f"W={W} ({masters[W]}) measured, load average {load[f'after_W{W}'][0]:.2f}", flush=True)

    # the driver's CPU per task is its serial share; the executors' share runs in parallel
    c, residuals = fit(bare, shuffled, driver, statistics.median(t["driver_cpu_s"] for t in tasks.values()))
    t_step, t_row = steps[1]["t_step_alone_s"], steps[1]["t_pred_row_alone_s"]
    checks = [{**f, "model_s": round_overhead(c, f["W"], 8.0 * N_PARAMS, None) + f["k"] * steps[f["W"]]["t_step_concurrent_s"]}
              for f in full]
    predictions = [epoch(c, W, k, t_step, t_row, wire_bps) for k in PREDICT_KS for W in PREDICT_WS]
    # sync mode: one round per global minibatch, params only, each worker computes 128/W rows
    n_steps = math.ceil(N_TRAIN / BATCH)
    sync = [{"W": W, "epoch_s": n_steps * (round_overhead(c, W, 4.0 * N_PARAMS, wire_bps) + t_step / W)
             + math.ceil(N_TEST / W) * t_row} for W in PREDICT_WS]
    pessimistic = [epoch(c, W, 235, t_step, t_row, wire_bps, pessimistic=True) for W in PREDICT_WS]
    for preds in (predictions, pessimistic):
        for pr in preds:
            base = next(q for q in preds if q["k"] == pr["k"] and q["W"] == 1)
            pr["speedup"] = base["epoch_s"] / pr["epoch_s"]
    result = {
        "system": "scaling", "date": datetime.date.today().isoformat(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "load_average": load, "task_cost": {str(W): t for W, t in tasks.items()},
        "masters": {str(W): m for W, m in masters.items()}, "driver": driver, "steps": {str(W): s for W, s in steps.items()},
        "bare": bare, "shuffled": shuffled, "full_rounds": checks, "constants": c, "residuals": residuals,
        "loopback_recv_bytes_per_s": 1 / c["c_recv_s_per_byte"] if c["c_recv_s_per_byte"] > 0 else None,
        "wire_bytes_per_s": wire_bps, "t_step_s": t_step, "t_pred_row_s": t_row,
        "predictions": predictions, "pessimistic_k235": pessimistic, "sync_predictions": sync, "limits": limits(c, t_step, t_row, wire_bps),
    }
    print_tables(result)
    Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json_out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


def print_tables(r: dict) -> None:
    """The measurements, the fit, the check and the predictions, as plain text."""
    def ms(seconds: float) -> str:
        return f"{1000 * seconds:8.1f}"

    print(f"\nload average (1 min) before and after each W: {[round(v[0], 2) for v in r['load_average'].values()]}")
    print(f"driver: pack {ms(r['driver']['pack_s'])} ms, update {ms(r['driver']['update_s'])} ms")
    print("t_step alone / concurrent (ms), forward per test row (us), per-task cost (ms)")
    for W, s in r["steps"].items():
        print(f"  W={W} ({r['masters'][W]}): {ms(s['t_step_alone_s'])} {ms(s['t_step_concurrent_s'])}  "
              f"{1e6 * s['t_pred_row_alone_s']:5.1f} {ms(r['task_cost'][W]['wall_s'])} "
              f"(driver CPU {ms(r['task_cost'][W]['driver_cpu_s'])})  "
              f"(real shard {s['real_shard']}, late tasks {s['late_tasks_concurrent']})")
    c = r["constants"]
    print("\nbare round (ms): W  S(MB)  bcast [model]  job [model] (p25-p75)  job with 1 level [model]")
    shuffled = {(s["W"], s["bytes"]): s for s in r["shuffled"]}
    for b, res_bc, res in zip(r["bare"], r["residuals"]["broadcast_s"], r["residuals"]["job_s"]):
        line = (f"  {b['W']}  {b['bytes'] / 1e6:6.2f} {ms(b['broadcast_s'])} [{ms(b['broadcast_s'] - res_bc)}]"
                f" {ms(b['job_s'])} [{ms(b['job_s'] - res)}] ({1000 * b['job_p25_s']:.0f}-{1000 * b['job_p75_s']:.0f})")
        s = shuffled.get((b["W"], b["bytes"]))
        if s:
            f = math.ceil(b["W"] / s["shuffle_to"])
            line += f" {ms(s['job_s'])} [{ms(job_model(c, b['W'], b['bytes'], [f], s['shuffle_to'], 2 * b['bytes']))}]"
        print(line)
    print("\nconstants: " + ", ".join(f"{k}={v:.4g}" for k, v in c.items()))
    if r["loopback_recv_bytes_per_s"]:
        print(f"effective loopback bandwidth at the driver: {r['loopback_recv_bytes_per_s'] / 1e6:.0f} MB/s")
    print("\nfull trainer rounds (ms): W  k  measured  model")
    for f in r["full_rounds"]:
        print(f"  {f['W']}  {f['k']:3d} {ms(f['round_s'])} {ms(f['model_s'])}")
    print(f"\npredicted epoch on {8 * r['wire_bytes_per_s'] / 1e9:g} Gbit/s, t_step {ms(r['t_step_s'])} ms: "
          "W  k  rounds  overhead/round(ms)  epoch(s)  speed-up")
    for pr in r["predictions"] + r["pessimistic_k235"]:
        tag = "  (pessimistic: loopback per-worker slope)" if pr in r["pessimistic_k235"] else ""
        print(f"  {pr['W']:3d} {pr['k']:4d} {pr['rounds']:4d} {ms(pr['round_overhead_s'])} {pr['epoch_s']:8.2f} "
              f"{pr['speedup']:6.2f}{tag}")
    print("sync mode epoch (s): " + ", ".join(f"W={p['W']}: {p['epoch_s']:.1f}" for p in r["sync_predictions"]))
    print("\nlimits: data  steps/epoch  k_min(W)  last W with share >= k_min  fastest W (epoch s, speed-up)")
    for lim in r["limits"]:
        print(f"  {lim['data_scale']:4d}x {lim['steps_per_epoch']:6d}  {lim['k_min']}  {lim['w_stop']}  "
              f"{lim['w_fastest']} ({lim['epoch_s_fastest']:.2f} s, {lim['speedup_fastest']:.1f}x)")


if __name__ == "__main__":
    sys.exit(main())
