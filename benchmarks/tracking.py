"""What `train --mlflow` costs: the tutorial run on local[2] with and without MLflow tracking.

Each run is its own spark-submit process timed whole, the same command with and without
--mlflow, alternating (plain, tracked) for --pairs pairs so that a change in the machine's load
hits both alike; the figure is the median of the pairs' differences. The tracked runs log to one
SQLite store in a temporary directory, made before the pairs (its creation, MLflow's schema
migrations, is timed apart: a user pays it once). Writes OUT/tracking.json.

    python benchmarks/tracking.py --data data/mnist                  # 15 epochs, 3 pairs
    python benchmarks/tracking.py --data data/mnist --epochs 2 --pairs 1 --out /tmp/bench   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance import loadavg, provenance

from dist_mnist.files.atomic import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
SPARK_SUBMIT = str(Path(PY).parent / "spark-submit")


def run_once(data: str, out: Path, epochs: int, master: str, tracked: bool, env: dict, log: Path) -> dict:
    """One spark-submit of jobs/train.py, timed whole; its phases and accuracy."""
    cmd = [
        SPARK_SUBMIT,
        "--master",
        master,
        "jobs/train.py",
        "--data",
        data,
        "--out",
        str(out),
        "--overwrite",
        "--set",
        f"epochs={epochs}",
        *(["--mlflow"] if tracked else []),
    ]
    t0 = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.run(cmd, check=False, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}; see {log}")
    if "warning:" in log.read_text():
        raise RuntimeError(f"tracking warned; see {log}")
    phases_line = next(line for line in proc.stdout.splitlines() if line.startswith("phases (s):"))
    phases = {k: float(v) for k, v in re.findall(r"(\w+) ([\d.]+)", phases_line)}
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "tracked": tracked,
        "process_seconds": round(seconds, 2),
        "phases_seconds": phases,
        "accuracy": metrics["final"]["accuracy"],
        "command": " ".join(["spark-submit", *cmd[1:]]).replace(str(out), "RUN"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="MNIST ingested by dist-mnist ingest (DATA)")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--pairs", type=int, default=3)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    args = p.parse_args()
    record = provenance("tracking.py")
    with tempfile.TemporaryDirectory(prefix="bench-tracking-") as tmp:
        scratch = Path(tmp)
        uri = f"sqlite:///{scratch / 'mlruns.db'}"
        env = {
            **os.environ,
            "PYSPARK_PYTHON": PY,
            "MLFLOW_TRACKING_URI": uri,
            "SPARK_CONF_DIR": os.environ.get("SPARK_CONF_DIR", str(REPO / "conf")),
            "PATH": f"{Path(PY).parent}:{os.environ['PATH']}",
        }
        t0 = time.perf_counter()
        subprocess.run(
            [PY, "-c", f"import mlflow; mlflow.MlflowClient({uri!r}).search_experiments()"],
            env=env,
            check=True,
            capture_output=True,
        )
        store_seconds = time.perf_counter() - t0
        runs = []
        for i in range(args.pairs):
            for tracked in (False, True):
                name = f"{'tracked' if tracked else 'plain'}-{i}"
                runs.append(
                    run_once(args.data, scratch / name, args.epochs, args.master, tracked, env, scratch / f"{name}.log")
                )
                print(f"{name}: {runs[-1]['process_seconds']:.1f} s, accuracy {runs[-1]['accuracy']:.4f}", flush=True)
        import mlflow

        logged = mlflow.MlflowClient(uri).search_runs(
            [mlflow.MlflowClient(uri).get_experiment_by_name("dist-mnist").experiment_id]
        )
        assert sorted(r.info.status for r in logged) == ["FINISHED"] * args.pairs, [r.info.status for r in logged]
    plain = [r["process_seconds"] for r in runs if not r["tracked"]]
    tracked = [r["process_seconds"] for r in runs if r["tracked"]]
    differences = [t - q for q, t in zip(plain, tracked)]
    overhead = statistics.median(differences)
    result = {
        **record,
        "loadavg_after": loadavg(),
        "what": f"the tutorial config, {args.epochs} epochs on {args.master}, spark-submit jobs/train.py timed "
        f"whole, with and without --mlflow, alternating; {args.pairs} pairs",
        "store_creation_seconds": round(store_seconds, 2),
        "median_plain_seconds": round(statistics.median(plain), 2),
        "median_tracked_seconds": round(statistics.median(tracked), 2),
        "median_overhead_seconds": round(overhead, 2),
        "overhead_percent": round(100 * overhead / statistics.median(plain), 1),
        "median_tracking_start_seconds": round(
            statistics.median(r["phases_seconds"].get("tracking_start", 0.0) for r in runs if r["tracked"]), 2
        ),
        "runs": runs,
    }
    Path(args.out).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(args.out) / "tracking.json", result)
    print(
        f"tracking overhead: median {overhead:.1f} s a run ({result['overhead_percent']}% of "
        f"{result['median_plain_seconds']:.1f} s); store creation {store_seconds:.1f} s once; "
        f"wrote {Path(args.out) / 'tracking.json'}"
    )


if __name__ == "__main__":
    main()
