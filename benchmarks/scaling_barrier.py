"""The persistent transport's round: calibrated on loopback, predicted for 8 to 128 workers.

Measures the bare barrier round (benchmarks/rounds.py: send S bytes to each of W workers,
S bytes back from each, combine in worker order) for W = 1, 2, 4 (`local[W]`) and
S = 3.18, 6.36 and 25.4 MB, fits T = a + b * W * S, and predicts a 10 Gbit/s cluster where the
driver's link also carries W * S bytes each way: T = a + b W S + 2 W S / B_net. Beside it, the
Spark-job round of docs/scaling.md (benchmarks/scaling.py's model and its saved constants),
and the default config's epoch and time to 97.1% (epochs from benchmarks/results/workers.json).

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

from dist_mnist.artifacts import atomic_write_json  # noqa: E402
from dist_mnist.config import TrainConfig, local_steps_per_round

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import scaling  # noqa: E402  the Spark-job round's model and constants

N_PARAMS = scaling.N_PARAMS
PAYLOADS = (N_PARAMS, 2 * N_PARAMS, 8 * N_PARAMS)  # sync, average (params + state), lever arm
WIRE = 1.25e9  # 10 Gbit/s
PREDICT_WS = (1, 2, 4, 8, 16, 32, 64, 128)


def measure(W: int, floats: int, rounds: int, jobs_rounds: int, scratch: Path) -> dict:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    cmd = [str(Path(sys.executable).parent / "spark-submit"), "--master", f"local[{W}]",
           "--conf", "spark.ui.enabled=false", str(BENCH / "rounds.py"), "--workers", str(W),
           "--floats", str(floats), "--rounds", str(rounds), "--jobs-rounds", str(jobs_rounds), "--out", str(scratch)]
    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=900)
    r = json.loads((scratch / f"rounds-W{W}.json").read_text())
    return {"W": W, "S_bytes": 4 * floats, "barrier_ms": r["barrier"]["median_ms"],
            "jobs_ms": r["jobs"]["median_ms"] if r["jobs"] else None}


def default_epoch(W: int, T_round: float, c: dict, t_step: float, t_row: float) -> dict:
    """The default config: k = 235 local steps a round (one round an epoch from W = 2 on), fewer beyond
    32 workers (at least W/32 rounds an epoch: dist_mnist.config.local_steps_per_round)."""
    steps = math.ceil(math.ceil(scaling.N_TRAIN / W) / scaling.BATCH)
    rounds = math.ceil(steps / local_steps_per_round(TrainConfig(workers=W), steps))
    seconds = rounds * (T_round + c["t_driver_s"]) + steps * t_step + math.ceil(scaling.N_TEST / W) * t_row
    return {"rounds": rounds, "steps": steps, "epoch_s": seconds}


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

    saved = json.loads((BENCH / "results" / "scaling.json").read_text())
    c, t_step, t_row = saved["constants"], saved["t_step_s"], saved["t_pred_row_s"]
    check = None
    speed = BENCH / "results" / "speed.json"
    if speed.exists():  # today's step time, from the default run of benchmarks/speed.py (235 steps a round)
        runs = [p["system"] for p in json.loads(speed.read_text()).get("systems", {}).get("default", {}).get("pairs", [])
                if p["system"]["status"] == "ok"]
        default = sorted(runs, key=lambda r: r["process_seconds"])[len(runs) // 2] if runs else {}  # the median run
        if default.get("status") == "ok":
            t_step = default["round_ms"]["executor"] / 1000 / 235
            check = {"measured_epoch_s": default["phases_seconds"]["rounds"] / default["rounds"],
                     "source": "benchmarks/results/speed.json (default, local[2], rounds phase / epochs)"}
    workers = json.loads((BENCH / "results" / "workers.json").read_text())
    epochs_to = {r["workers"]: r.get("epochs_to_target") for r in workers["runs"]}
    S = 8.0 * N_PARAMS  # the default mode ships params + Nesterov state
    predictions = []
    for W in PREDICT_WS:
        barrier = a + b * W * S + 2 * W * S / WIRE
        jobs = scaling.round_overhead(c, W, S, WIRE) - c["t_driver_s"]
        e_bar, e_jobs = default_epoch(W, barrier, c, t_step, t_row), default_epoch(W, jobs, c, t_step, t_row)
        row = {"W": W, "barrier_round_s": round(barrier, 4), "jobs_round_s": round(jobs, 4),
               "epoch_barrier_s": round(e_bar["epoch_s"], 3), "epoch_jobs_s": round(e_jobs["epoch_s"], 3),
               "steps_per_worker": e_bar["steps"], "rounds_per_epoch": e_bar["rounds"],
               "epochs_to_971": epochs_to.get(W)}
        if row["epochs_to_971"]:
            row["time_to_971_barrier_s"] = round(row["epochs_to_971"] * e_bar["epoch_s"], 2)
            row["time_to_971_jobs_s"] = round(row["epochs_to_971"] * e_jobs["epoch_s"], 2)
        predictions.append(row)
        print(json.dumps(row), flush=True)
    if check:  # the loopback model (no wire term) at W = 2 against the measured epoch
        loop = a + b * 2 * S
        check["model_epoch_s"] = round(default_epoch(2, loop, c, t_step, t_row)["epoch_s"], 3)
        check["measured_epoch_s"] = round(check["measured_epoch_s"], 3)
    doc = {"date": measured, "command": command,
           **({"predicted": time.strftime("%Y-%m-%d %H:%M")} if args.reuse else {}),
           "check_w2": check,
           "fit": {"a_s": a, "b_s_per_worker_byte": b}, "points": points, "wire_bytes_per_s": WIRE,
           "t_step_s": t_step, "t_row_s": t_row, "t_driver_s": c["t_driver_s"], "predictions": predictions}
    path = out / "scaling-barrier.json"
    atomic_write_json(path, doc)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
