"""Test accuracy against worker count: the default config for every W, on the real MNIST.

Each W runs as its own process with the in-process transport (the same round functions as
the Spark transports; tests/spark/test_transports.py proves the models bit-identical), so W up
to 64 fits on a 2-core machine. Writes OUT/workers.json: per W, the test accuracy after every
epoch and the first epoch at or above the target.

    python benchmarks/workers.py --data DATA --out benchmarks/results [--workers 1 2 4] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from dist_mnist.artifacts import atomic_write_json

TARGET = 0.971
DEFAULT_WORKERS = (1, 2, 3, 4, 8, 16, 32, 64)
EPOCHS = {32: 30, 64: 30}  # beyond 16 workers: train longer and report the epochs to the target


def run_one(data: str, workers: int, epochs: int, sets: list[str], scratch: Path) -> dict:
    """Train the default config at W workers in a child process; its per-epoch test accuracy."""
    run = scratch / f"W{workers}"
    cmd = [sys.executable, "-m", "dist_mnist.cli", "train", "--data", data, "--out", str(run), "--overwrite",
           "--set", "transport=inprocess", "--set", f"workers={workers}", "--set", f"epochs={epochs}",
           *[a for s in sets for a in ("--set", s)]]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # one BLAS thread, as on an executor
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"workers": workers, "error": proc.stderr.strip().splitlines()[-1:]}
    metrics = json.loads((run / "metrics.json").read_text())
    meta = json.loads((run / "model.json").read_text())
    accuracy = [e.get("test_accuracy") for e in metrics["epochs"]]
    reached = next((i + 1 for i, a in enumerate(accuracy) if a is not None and a >= TARGET), None)
    return {"workers": workers, "epochs": epochs, "test_accuracy": accuracy, "final": metrics["final"]["accuracy"],
            "epochs_to_target": reached, "rounds_per_epoch": metrics["rounds"]["rounds"] // epochs,
            "local_learning_rate": meta["local_learning_rate"], "config": meta["config"],
            "process_seconds": round(time.perf_counter() - t0, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="dataset directory written by dist-mnist ingest")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--workers", type=int, nargs="+", default=list(DEFAULT_WORKERS))
    p.add_argument("--jobs", type=int, default=2, help="runs at once (each uses one core)")
    p.add_argument("--set", action="append", default=[], help="extra config settings for every run")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(run_one, args.data, w, EPOCHS.get(w, 15), args.set, Path(scratch))
                   for w in args.workers]
        results = []
        for f in futures:
            results.append(f.result())
            print(json.dumps({k: v for k, v in results[-1].items() if k != "config"}), flush=True)
    out = Path(args.out) / "workers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"target": TARGET, "date": time.strftime("%Y-%m-%d"), "data": args.data,
           "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "runs": results}
    atomic_write_json(out, doc)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
