"""Where a run's time goes, with the NumPy and with the fused update: py-spy profiles of whole runs.

Runs `dist-mnist train --master local[2]` for the default run and the sync run (--set mode=sync),
each twice: with the NumPy update (DIST_MNIST_FUSED=0) and with the fused one (needs py-spy:
`pip install py-spy`). One py-spy records the driver from its start; once the barrier stage's Python
workers are up (pyspark's daemon forks them; py-spy's --subprocesses does not follow a fork
without exec), one more py-spy attaches to each of them for the rest of the run. Each side's
samples are split by profile_shares.py into GEMM, the update, batching, transport, Spark start, ...
The process's wall time and the run's phases are kept beside them. Writes OUT/profiles.json.

    python benchmarks/profiles.py --data data/mnist
    python benchmarks/profiles.py --data data/mnist --epochs 1 --runs default --out /tmp/prof   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from profile_shares import shares
from provenance import loadavg, provenance

from dist_mnist.files.atomic import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
PY_SPY = str(Path(sys.executable).parent / "py-spy")
RUNS = {"default": [], "sync": ["mode=sync"]}
UPDATES = {"numpy": "0", "fused": "1"}  # DIST_MNIST_FUSED: "0" the NumPy update (before), "1" the fused one
UPDATES_ENV = "DIST_MNIST_FUSED"
WORKERS = 2


def children(pid: int) -> list[int]:
    """The pids whose parent is `pid`."""
    out = subprocess.run(["ps", "-eo", "pid=,ppid="], capture_output=True, text=True, check=True).stdout
    return [int(a) for a, b in (line.split() for line in out.splitlines()) if int(b) == pid]


def stage_workers(driver: int) -> list[int]:
    """The Python workers pyspark's daemon forked under the driver's JVM (empty until they exist)."""
    daemons = [d for jvm in children(driver) for d in children(jvm)]
    return [w for d in daemons for w in children(d)]


def record(pid: int, raw: Path) -> subprocess.Popen:
    cmd = [PY_SPY, "record", "--pid", str(pid), "--native", "--rate", "100", "--format", "raw", "-o", str(raw)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile(run: str, update: str, data: str, epochs: int, scratch: Path) -> dict:
    """One profiled run of the tutorial; its shares by side, wall time, phases and accuracy."""
    sets = [*RUNS[run], f"epochs={epochs}", f"workers={WORKERS}"]
    out = scratch / f"{run}-{update}"
    train = [
        sys.executable,
        "-m",
        "dist_mnist.cli",
        "train",
        "--master",
        "local[2]",
        "--data",
        data,
        "--out",
        str(out),
        "--overwrite",
        *[a for s in sets for a in ("--set", s)],
    ]
    env = {
        **os.environ,
        UPDATES_ENV: UPDATES[update],
        "PYSPARK_PYTHON": sys.executable,
        "SPARK_CONF_DIR": os.environ.get("SPARK_CONF_DIR", str(REPO / "conf")),
    }
    load = loadavg()
    t0 = time.perf_counter()
    driver = subprocess.Popen(train, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    spies = [record(driver.pid, scratch / "driver.txt")]
    workers: list[int] = []
    while driver.poll() is None and len(workers) < WORKERS:
        time.sleep(0.2)
        workers = stage_workers(driver.pid)
    spies += [record(w, scratch / f"worker-{w}.txt") for w in workers]
    stdout, _ = driver.communicate()
    seconds = time.perf_counter() - t0
    for spy in spies:
        spy.wait(timeout=60)  # py-spy writes its file when the process it records ends
    if driver.returncode != 0:
        raise RuntimeError(f"{' '.join(train)} exited {driver.returncode}")
    phases = dict(re.findall(r"(\w+) ([\d.]+)", stdout[stdout.rindex("phases (s):") :].splitlines()[0]))
    with open(scratch / "driver.txt") as f:
        split = {"driver": shares(f)["driver"]}
    lines = [line for w in workers for line in (scratch / f"worker-{w}.txt").read_text().splitlines()]
    split["executors"] = next(iter(shares(lines).values()))
    return {
        "run": run,
        "update": update,
        "process_seconds": round(seconds, 2),
        "accuracy": json.loads((out / "metrics.json").read_text())["final"]["accuracy"],
        "phases_seconds": {k: float(v) for k, v in phases.items()},
        "loadavg_before": load,
        "stage_workers_profiled": len(workers),
        "shares": split,
        "command": f"{UPDATES_ENV}={UPDATES[update]} dist-mnist train --master local[2] "
        + " ".join(f"--set {s}" for s in sets),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS))
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args()
    doc = {**provenance("profiles.py"), "epochs": args.epochs, "profiles": []}
    for run in args.runs:
        for update in UPDATES:
            with tempfile.TemporaryDirectory() as tmp:
                r = profile(run, update, args.data, args.epochs, Path(tmp))
            doc["profiles"].append(r)
            print(json.dumps({k: r[k] for k in ("run", "update", "process_seconds", "accuracy")}), flush=True)
    doc["loadavg_after"] = loadavg()
    path = Path(args.out) / "profiles.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, doc)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
