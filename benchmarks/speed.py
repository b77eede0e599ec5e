"""Whole-process time to the tutorial's accuracy: dist-mnist's modes against single-process PyTorch.

Runs, one after another on an otherwise idle machine, each as its own process timed whole:
  pytorch   benchmarks/torch_reference.py: the tutorial's recipe, plain synchronous Nesterov SGD,
            batch 128, 2 threads, 15 epochs;
  default   spark-submit --master local[2] jobs/train.py: average mode, 2 workers, the persistent
            transport (local steps with an outer Nesterov step: a different algorithm from PyTorch's);
  sync      the same with --set mode=sync: the tutorial's exact math (one global minibatch of 128 a
            round, 7,035 rounds), the same algorithm as PyTorch's;
  sync-inprocess  sync mode with --set transport=inprocess (no Spark: the same round functions
            and seeds in one process, both workers on one core), what the same math costs without Spark.
Writes OUT/speed.json; prints each run's line.

    python benchmarks/speed.py --data DATA --mnist-dir $MNIST_DIR --out benchmarks/results
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

from dist_mnist.artifacts import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
SPARK_SUBMIT = str(Path(PY).parent / "spark-submit")


def timed(cmd: list[str], env: dict, log: Path) -> tuple[float, str, int]:
    t0 = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    return time.perf_counter() - t0, proc.stdout, proc.returncode


def dist_mnist_run(name: str, data: str, sets: list[str], scratch: Path, env: dict, spark: bool) -> dict:
    run = scratch / name
    flags = ["--data", data, "--out", str(run), "--overwrite", *[a for s in sets for a in ("--set", s)]]
    if spark:
        cmd = [SPARK_SUBMIT, "--master", "local[2]", "jobs/train.py", *flags]
    else:
        cmd = [PY, "-m", "dist_mnist.cli", "train", *flags]
    seconds, out, rc = timed(cmd, env, scratch / f"{name}.log")
    if rc != 0:
        return {"system": name, "status": "failed", "returncode": rc, "log": str(scratch / f"{name}.log")}
    metrics = json.loads((run / "metrics.json").read_text())
    phases = dict(re.findall(r"(\w+) ([\d.]+)", out[out.rindex("phases (s):"):].splitlines()[0]))
    phases = {k: float(v) for k, v in phases.items()}
    in_train = sum(phases.values())
    rounds = metrics["rounds"]
    return {"system": name, "status": "ok", "process_seconds": round(seconds, 2),
            "accuracy": metrics["final"]["accuracy"], "transport": rounds.get("transport"),
            "rounds": rounds["rounds"], "phases_seconds": {"start-up (JVM, imports, Spark)": round(seconds - in_train, 2),
                                                           **{k: round(v, 2) for k, v in phases.items()}},
            "round_ms": {k: round(rounds[k]["mean_ms"], 3) for k in ("executor", "straggler", "overhead", "update")},
            "overhead_median_ms": rounds["overhead_ms"]["median_after_first"],
            "epochs": [{k: e.get(k) for k in ("epoch", "test_accuracy", "elapsed_seconds")} for e in metrics["epochs"]],
            "command": " ".join(cmd[:1] + [Path(c).name if c.startswith("/") else c for c in cmd[1:]])}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True)
    p.add_argument("--mnist-dir", required=True, help="the four MNIST .gz files (for PyTorch)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--only", nargs="+", default=["pytorch", "default", "sync", "sync-inprocess"])
    args = p.parse_args()
    env = {**os.environ, "PYSPARK_PYTHON": PY, "SPARK_CONF_DIR": os.environ.get("SPARK_CONF_DIR", str(REPO / "conf")),
           "PATH": f"{Path(PY).parent}:{os.environ['PATH']}"}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for name in args.only:
            if name == "pytorch":
                seconds, out, rc = timed([PY, "benchmarks/torch_reference.py", "--mnist-dir", args.mnist_dir,
                                          "--threads", "2"], env, scratch / "pytorch.log")
                summary = json.loads([line for line in out.splitlines() if '"system"' in line][-1]) if rc == 0 else {}
                results[name] = {"system": name, "status": "ok" if rc == 0 else "failed",
                                 "process_seconds": round(seconds, 2), "accuracy": summary.get("accuracy"),
                                 "train_seconds": summary.get("train_seconds"),
                                 "command": "python benchmarks/torch_reference.py --threads 2"}
            elif name == "default":
                results[name] = dist_mnist_run(name, args.data, [], scratch, env, spark=True)
            elif name == "sync":
                results[name] = dist_mnist_run(name, args.data, ["mode=sync"], scratch, env, spark=True)
            elif name == "sync-inprocess":
                results[name] = dist_mnist_run(name, args.data, ["mode=sync", "transport=inprocess", "workers=2"],
                                               scratch, env, spark=False)
            print(json.dumps({k: v for k, v in results[name].items() if k != "epochs"}), flush=True)
    torch_s = results.get("pytorch", {}).get("process_seconds")
    for r in results.values():
        if torch_s and r.get("process_seconds") and r["system"] != "pytorch":
            r["ratio_to_pytorch"] = round(r["process_seconds"] / torch_s, 3)
    doc = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{os.cpu_count()} cores", "results": results,
           "command": "python benchmarks/speed.py " + " ".join(sys.argv[1:])}
    path = Path(args.out) / "speed.json"
    atomic_write_json(path, doc)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
