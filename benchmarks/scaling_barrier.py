"""The persistent transport's round: calibrated on loopback, predicted for 8 to 128 workers.

Measures the bare barrier round (benchmarks/rounds.py: send S bytes to each of W workers,
S bytes back from each, combine in worker order) for W = 1, 2, 4 (`local[W]`) and
S = 3.18, 6.36 and 25.4 MB, fits T = a + b * W * S, and predicts a 10 Gbit/s cluster where the
driver's link also carries W * S bytes each way: T = a + b W S + 2 W S / B_net; then the
default config's epoch and time to 97.1% (epochs from benchmarks/results/workers.json; a local
step and the driver's update from the default run of benchmarks/results/speed.json, so run
speed.py first; the forward pass per test row measured here).

    python benchmarks/scaling_barrier.py --out benchmarks/results      (~5 min)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from dist_mnist.config import TrainConfig
from dist_mnist.files.atomic import atomic_write_json
from dist_mnist.modes import local_steps_per_round
from dist_mnist.nn.model import init_params, logits_of

BENCH = Path(__file__).resolve().parent
N_TRAIN, N_TEST, BATCH = 60_000, 10_000, 128
N_PARAMS = 795_010  # 784*1000 + 1000 + 1000*10 + 10
PAYLOADS = (N_PARAMS, 2 * N_PARAMS, 8 * N_PARAMS)  # sync, average (params + state), lever arm
WIRE = 1.25e9  # 10 Gbit/s
PREDICT_WS = (1, 2, 4, 8, 16, 32, 64, 128)


def measure(W: int, floats: int, rounds: int, jobs_rounds: int, scratch: Path) -> dict:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    cmd = [
        str(Path(sys.executable).parent / "spark-submit"),
        "--master",
        f"local[{W}]",
        "--conf",
        "spark.ui.enabled=false",
        str(BENCH / "rounds.py"),
        "--workers",
        str(W),
        "--floats",
        str(floats),
        "--rounds",
        str(rounds),
        "--jobs-rounds",
        str(jobs_rounds),
        "--out",
        str(scratch),
    ]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=900)
    r = json.loads((scratch / f"rounds-W{W}.json").read_text())
    return {
        "W": W,
        "S_bytes": 4 * floats,
        "barrier_ms": r["barrier"]["median_ms"],
        "jobs_ms": r["jobs"]["median_ms"] if r["jobs"] else None,
    }


def default_epoch(W: int, T_round: float, t_driver: float, t_step: float, t_row: float) -> dict:
    """The default config: k = 235 local steps a round (one round an epoch from W = 2 on), fewer beyond
    32 workers (at least W/32 rounds an epoch: dist_mnist.modes.local_steps_per_round)."""
    steps = math.ceil(math.ceil(N_TRAIN / W) / BATCH)
    rounds = math.ceil(steps / local_steps_per_round(TrainConfig(workers=W), steps))
    seconds = rounds * (T_round + t_driver) + steps * t_step + math.ceil(N_TEST / W) * t_row
    return {"rounds": rounds, "steps": steps, "epoch_s": seconds}


def forward_seconds_per_row(reps: int = 5) -> float:
    """The forward pass of the tutorial's network per test row (the side evaluation), best of `reps`."""
    from threadpoolctl import threadpool_limits

    params = init_params([784, 1000, 10], 123)
    X = np.random.default_rng(0).random((N_TEST, 784), dtype=np.float32)  # (n, 784)
    best = math.inf
    with threadpool_limits(limits=1, user_api="blas"):  # one core a task, as an executor runs it
        for _ in range(reps):
            t0 = time.perf_counter()
            logits_of(params, X)
            best = min(best, time.perf_counter() - t0)
    return best / N_TEST


def step_and_update(speed: Path) -> tuple[float, float, dict]:
    """t_step and the driver's update from the median default run of speed.json, and what it is checked against."""
    if not speed.exists():
        raise SystemExit(f"{speed}: missing; run benchmarks/speed.py first (a local step's time comes from it)")
    runs = [
        p["system"]
        for p in json.loads(speed.read_text()).get("systems", {}).get("default", {}).get("pairs", [])
        if p["system"]["status"] == "ok"
    ]
    if not runs:
        raise SystemExit(f"{speed}: no finished default run to take a local step's time from")
    default = sorted(runs, key=lambda r: r["process_seconds"])[len(runs) // 2]  # the median run
    check = {
        "measured_epoch_s": default["phases_seconds"]["rounds"] / default["rounds"],
        "source": "benchmarks/results/speed.json (default, local[2], rounds phase / epochs)",
    }
    return default["round_ms"]["executor"] / 1000 / 235, default["round_ms"]["update"] / 1000, check


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=str(BENCH / "results"))
    p.add_argument("--rounds", type=int, default=60)
    p.add_argument("--reuse", action="store_true", help="refit and predict from the saved measurements")
    args = p.parse_args()
    out = Path(args.out)
    measured, command = time.strftime("%Y-%m-%d %H:%M"), "python benchmarks/scaling_barrier.py"
    if args.reuse:  # the measurements (and their date and command) stay; the predictions are redone
        saved = json.loads((out / "scaling-barrier.json").read_text())
        points, measured, command = saved["points"], saved["date"], saved["command"]
    else:
        scratch = out / ".scaling-barrier"
        scratch.mkdir(parents=True, exist_ok=True)
        points = []
        for W in (1, 2, 4):
            for floats in PAYLOADS:
                points.append(measure(W, floats, args.rounds, 15 if floats == N_PARAMS else 0, scratch))
                print(json.dumps(points[-1]), flush=True)
        for f in scratch.glob("*"):
            f.unlink()
        scratch.rmdir()
    X = np.array([[1.0, p["W"] * p["S_bytes"]] for p in points])
    y = np.array([p["barrier_ms"] / 1000 for p in points])
    (a, b), *_ = np.linalg.lstsq(X, y, rcond=None)
    for p_ in points:
        p_["model_ms"] = round(1000 * (a + b * p_["W"] * p_["S_bytes"]), 2)

    t_step, t_driver, check = step_and_update(BENCH / "results" / "speed.json")
    t_row = forward_seconds_per_row()
    workers = json.loads((BENCH / "results" / "workers.json").read_text())
    epochs_to = {r["workers"]: r.get("epochs_to_target") for r in workers["runs"]}
    S = 8.0 * N_PARAMS  # the default mode ships params + Nesterov state
    predictions = []
    for W in PREDICT_WS:
        barrier = a + b * W * S + 2 * W * S / WIRE
        e_bar = default_epoch(W, barrier, t_driver, t_step, t_row)
        row = {
            "W": W,
            "barrier_round_s": round(barrier, 4),
            "epoch_barrier_s": round(e_bar["epoch_s"], 3),
            "steps_per_worker": e_bar["steps"],
            "rounds_per_epoch": e_bar["rounds"],
            "epochs_to_971": epochs_to.get(W),
        }
        if row["epochs_to_971"]:
            row["time_to_971_barrier_s"] = round(row["epochs_to_971"] * e_bar["epoch_s"], 2)
        predictions.append(row)
        print(json.dumps(row), flush=True)
    # the loopback model (no wire term) at W = 2 against the measured epoch
    check["model_epoch_s"] = round(default_epoch(2, a + b * 2 * S, t_driver, t_step, t_row)["epoch_s"], 3)
    check["measured_epoch_s"] = round(check["measured_epoch_s"], 3)
    doc = {
        "date": measured,
        "command": command,
        **({"predicted": time.strftime("%Y-%m-%d %H:%M")} if args.reuse else {}),
        "check_w2": check,
        "fit": {"a_s": a, "b_s_per_worker_byte": b},
        "points": points,
        "wire_bytes_per_s": WIRE,
        "t_step_s": t_step,
        "t_row_s": t_row,
        "t_driver_s": t_driver,
        "predictions": predictions,
    }
    path = out / "scaling-barrier.json"
    atomic_write_json(path, doc)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
