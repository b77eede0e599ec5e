"""Run every benchmark of benchmarks/README.md's table, one after another, then docs.py.

The steps are exactly the table's rows (tests/unit/test_bench_run_all.py checks it): each
script backs a generated block of docs/performance.md or docs/scaling.md. Each runs as its own
process (the machine has 2 cores: nothing runs beside it), writes its own OUT/*.json with the
command and date, and logs to OUT/logs/NAME.log. A failed step is reported and the run goes on;
benchmarks/docs.py then regenerates the blocks from whatever JSON is there. There is no summary
file of its own: the generated blocks are the report.

    python benchmarks/run_all.py --data DATA --mnist-dir $MNIST_DIR        # ~1 h; ingests DATA if missing
    python benchmarks/run_all.py --data DATA --mnist-dir $MNIST_DIR --only mllib memory
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
PY = sys.executable
SPARK_SUBMIT = str(Path(PY).parent / "spark-submit")
STEP_NAMES = (
    "kernels",
    "speed",
    "updater",
    "profiles",
    "rounds",
    "channels",
    "workers",
    "scaling_barrier",  # after speed and workers: it reads their JSON
    "reduce",
    "reduce_ipc",
    "mllib",
    "memory",
    "transform",
    "fit_vectors",
    "tracking",
    "connect",
)


def steps(args) -> dict[str, list[str]]:
    """Every step's command line, in the order they run."""
    data, out, mnist = str(args.data), str(args.out), str(args.mnist_dir)
    return {
        "kernels": [PY, "benchmarks/kernels.py", "--data", data, "--out", out],
        "speed": [PY, "benchmarks/speed.py", "--data", data, "--mnist-dir", mnist, "--out", out],
        "updater": [PY, "benchmarks/updater.py", "--mnist-dir", mnist, "--out", str(args.out / "updater.json")],
        "profiles": [PY, "benchmarks/profiles.py", "--data", data, "--out", out],
        "rounds": [
            SPARK_SUBMIT,
            "--master",
            "local[2]",
            "benchmarks/rounds.py",
            "--workers",
            "2",
            "--rounds",
            "300",
            "--out",
            out,
        ],
        "channels": [PY, "benchmarks/channels.py", "--out", out],
        "workers": [PY, "benchmarks/workers.py", "--data", data, "--out", out],
        "scaling_barrier": [PY, "benchmarks/scaling_barrier.py", "--out", out],
        "reduce": [PY, "benchmarks/reduce.py", "--out", out],
        "reduce_ipc": [PY, "benchmarks/reduce.py", "--kind", "ipc", "--out", out],
        "mllib": [PY, "benchmarks/mllib_mlpc.py", "--data", data, "--out", out],
        "memory": [PY, "benchmarks/memory.py", "--data", data, "--out", out],
        "transform": [PY, "benchmarks/transform.py", "--data", data, "--out", str(args.out / "transform.json")],
        "fit_vectors": [
            SPARK_SUBMIT,
            "--master",
            "local[*]",
            "benchmarks/fit_vectors.py",
            "--mnist",
            mnist,
            "--out",
            out,
        ],
        "tracking": [PY, "benchmarks/tracking.py", "--data", data, "--out", out],
        "connect": [PY, "benchmarks/connect.py", "--data", data, "--out", out],
    }


def step_env() -> dict:
    """Spark's Python workers use this interpreter; spark-submit reads conf/ and finds dist_mnist."""
    return {
        **os.environ,
        "PYSPARK_PYTHON": PY,
        "SPARK_CONF_DIR": os.environ.get("SPARK_CONF_DIR", str(REPO / "conf")),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def run_step(name: str, cmd: list[str], logs: Path) -> int:
    """Run one step to completion with its output in logs/NAME.log; return its exit code."""
    log = logs / f"{name}.log"
    print(f"[run_all] {name}: {' '.join(cmd)}  (log: {log})", flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        done = subprocess.run(cmd, check=False, cwd=REPO, env=step_env(), stdout=f, stderr=subprocess.STDOUT)
    rc = done.returncode
    print(f"[run_all] {name}: exit {rc} after {time.perf_counter() - t0:.1f}s", flush=True)
    return rc


def main(argv: list[str] | None = None) -> int:
    """Ingest DATA if missing, run the chosen steps in order, then regenerate the docs."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO / "data" / "mnist", help="DATA (ingested if missing)")
    p.add_argument("--mnist-dir", type=Path, default=Path(os.environ.get("MNIST_DIR", REPO / "data" / "raw")))
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--only", nargs="+", choices=STEP_NAMES, help="steps to run (default: all, in this order)")
    args = p.parse_args(argv)
    args.data, args.out, args.mnist_dir = args.data.resolve(), args.out.resolve(), args.mnist_dir.resolve()
    plan = steps(args)
    assert tuple(plan) == STEP_NAMES, "steps() and STEP_NAMES list the same steps in the same order"
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    if not ((args.data / "train").is_dir() and (args.data / "test").is_dir()):
        cmd = [
            PY,
            "-m",
            "dist_mnist.cli",
            "ingest",
            "--source",
            str(args.mnist_dir),
            "--out",
            str(args.data),
            "--partitions",
            "2",
        ]
        if run_step("ingest", cmd, logs) != 0:
            raise SystemExit(f"run_all: ingest into {args.data} failed; see {logs / 'ingest.log'}")
    failed = [name for name, cmd in plan.items() if (not args.only or name in args.only) and run_step(name, cmd, logs)]
    if args.out == (BENCH / "results").resolve():  # docs.py reads benchmarks/results only
        run_step("docs", [PY, "benchmarks/docs.py"], logs)
    else:
        print(f"[run_all] results in {args.out}; docs.py renders benchmarks/results only, so the docs are unchanged")
    if failed:
        print(f"[run_all] failed: {', '.join(failed)} (logs in {logs})", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
