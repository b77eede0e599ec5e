"""Run dist-mnist, the PyTorch reference, MLlib's MLPC and the floors in sequence; report.

Each system runs as its own process, one at a time (the machine has 2 cores), timed whole.
A failed step is recorded with its error and the run goes on. Writes OUT/results.md,
OUT/results.json and OUT/accuracy_vs_time.png; each step's output goes to OUT/logs/.
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

import report  # the script's own directory is on sys.path

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
PY = sys.executable


def spark_submit() -> str:
    """The venv's spark-submit, falling back to the one on PATH."""
    local = Path(PY).parent / "spark-submit"
    return str(local) if local.exists() else "spark-submit"


def step_env() -> dict:
    """Environment for every step: Spark's Python workers use this interpreter."""
    env = {**os.environ, "PYSPARK_PYTHON": PY}
    if "SPARK_CONF_DIR" not in env and (REPO / "conf" / "spark-defaults.conf").exists():
        # spark-submit reads driver memory from here before the JVM starts.
        env["SPARK_CONF_DIR"] = str(REPO / "conf")
    return env


def run_step(name: str, cmd: list[str], logs: Path) -> dict:
    """Run one command to completion; return its wall seconds, exit code and output lines."""
    log = logs / f"{name}.log"
    print(f"[run_all] {name}: {' '.join(cmd)}  (log: {log})", flush=True)
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.run(cmd, cwd=REPO, env=step_env(), stdout=subprocess.PIPE, stderr=f, text=True)
        f.write("\n--- stdout ---\n" + proc.stdout)
    seconds = time.perf_counter() - t0
    print(f"[run_all] {name}: exit {proc.returncode} after {seconds:.1f}s", flush=True)
    return {"returncode": proc.returncode, "process_seconds": round(seconds, 2), "log": str(log),
            "stdout": proc.stdout}


def last_json(stdout: str, key: str = "system") -> dict | None:
    """The last JSON object line of stdout that has `key`."""
    for line in reversed(stdout.splitlines()):
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue
            if key in obj:
                return obj
    return None


def failed(name: str, run: dict, why: str) -> dict:
    """A system record for a step that ran but gave no result."""
    return {"system": name, "status": "failed", "note": f"{why} (exit {run['returncode']}; see {run['log']})",
            "process_seconds": run["process_seconds"]}


def count_rows(split_dir: Path) -> int:
    """Rows in a Parquet split, from the file footers."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(split_dir.glob("*.parquet")))


def parse_dist_mnist(run_dir: Path) -> dict:
    """Normalise dist-mnist's RUN/metrics.json and model.json. The contract is provisional:
    adjust the key names here and nowhere else.
    """
    metrics = json.loads((run_dir / "metrics.json").read_text())
    model = json.loads((run_dir / "model.json").read_text()) if (run_dir / "model.json").exists() else {}
    epochs = [e for e in metrics.get("epochs", []) if "test_accuracy" in e]
    curve, clock = [], 0.0
    for e in epochs:
        # elapsed_seconds: since training start; otherwise per-epoch wall_seconds, summed.
        clock = e["elapsed_seconds"] if "elapsed_seconds" in e else clock + e.get("wall_seconds", 0.0)
        curve.append([round(clock, 2), e["test_accuracy"]])
    final = model.get("metrics", {}).get("accuracy", metrics.get("final", {}).get("accuracy"))
    rounds = metrics.get("rounds", {})

    def mean_ms(key: str) -> float | None:
        v = rounds.get(key)
        return v.get("mean_ms") if isinstance(v, dict) else v

    # a round minus compute and update: dist-mnist's median per-round figure when it has one
    per_round = rounds.get("overhead_ms")
    overhead = [per_round["median"]] if isinstance(per_round, dict) else [mean_ms(k) for k in ("broadcast", "aggregate")]
    shard = metrics.get("shard_memory_bytes", rounds.get("shard_memory_bytes", rounds.get("shard_bytes")))
    if final is None and curve:
        final = curve[-1][1]
    return {"system": "dist-mnist", "status": "ok", "accuracy": final,
            "epochs": len(metrics.get("epochs", [])), "train_seconds": curve[-1][0] if curve else None,
            "curve": curve, "round_overhead_ms": sum(overhead) if None not in overhead else None,
            "round_breakdown": rounds, "shard_memory_bytes": shard or None}


def run_dist_mnist(args, logs: Path) -> dict:
    """Train with spark-submit on local[2] and read its run directory."""
    cmd = [spark_submit(), "--master", "local[2]", "jobs/train.py", "--data", str(args.data),
           "--out", str(args.run_dir), "--overwrite", "--set", f"epochs={args.epochs}"]
    run = run_step("dist-mnist", cmd, logs)
    if run["returncode"] != 0:
        return failed("dist-mnist", run, "training failed")
    try:
        result = parse_dist_mnist(args.run_dir)
    except (OSError, ValueError, KeyError, TypeError) as e:
        return failed("dist-mnist", run, f"unreadable metrics: {type(e).__name__}: {e}")
    return {**result, "process_seconds": run["process_seconds"]}


def run_torch(args, logs: Path) -> dict:
    """Train the PyTorch reference, if torch is installed."""
    if importlib.util.find_spec("torch") is None:
        return {"system": "pytorch", "status": "skipped", "note": "torch not installed (pip install -e .[bench])"}
    cmd = [PY, str(BENCH / "torch_reference.py"), "--epochs", str(args.epochs), "--threads", str(args.torch_threads),
           "--mnist-dir", str(args.mnist_dir)]
    run = run_step("pytorch", cmd, logs)
    summary = last_json(run["stdout"])
    if run["returncode"] != 0 or summary is None:
        return failed("pytorch", run, "no summary line")
    return {**summary, "status": "ok", "process_seconds": run["process_seconds"],
            "curve": summary.get("train_curve", summary["curve"])}


def run_mllib(args, logs: Path, target: float) -> dict:
    """Fit MLlib's MLPC towards `target` accuracy within the budget."""
    if args.skip_mllib:
        return {"system": "mllib", "status": "skipped", "note": "--skip-mllib"}
    if args.mllib_from:  # MLlib takes ~15 min: reuse its entry from an earlier results.json
        earlier = json.loads(Path(args.mllib_from).read_text())["systems"]["mllib"]
        return {**earlier, "note": f"{earlier.get('note', '')} reused from {args.mllib_from}".strip()}
    cmd = [PY, str(BENCH / "mllib_mlpc.py"), "--data", str(args.data), "--target-accuracy", str(target),
           "--budget-seconds", str(args.mllib_budget)]
    if args.quick:
        cmd += ["--max-iters", "5,10,20"]
    run = run_step("mllib", cmd, logs)
    summary = last_json(run["stdout"])
    if run["returncode"] != 0 or summary is None:
        return failed("mllib", run, "no summary line")
    return {**summary, "status": "ok", "process_seconds": run["process_seconds"]}


def run_floor(args, logs: Path) -> dict:
    """Measure the GEMM and bare-round floors."""
    cmd = [PY, str(BENCH / "floor.py")]
    if args.quick:
        cmd += ["--rounds", "10", "--warmup", "3", "--gemm-seconds", "0.5"]
    run = run_step("floor", cmd, logs)
    summary = last_json(run["stdout"])
    if run["returncode"] != 0 or summary is None:
        return failed("floor", run, "no summary line")
    return {**summary, "status": "ok", "process_seconds": run["process_seconds"]}


def ensure_data(args, logs: Path) -> None:
    """Ingest MNIST into DATA with dist-mnist if DATA is not there yet."""
    if (args.data / "train").exists() and (args.data / "test").exists():
        return
    cmd = [PY, "-m", "dist_mnist.cli", "ingest", "--source", str(args.mnist_dir), "--out", str(args.data),
           "--partitions", "2"]
    run = run_step("ingest", cmd, logs)
    if run["returncode"] != 0:
        raise SystemExit(f"run_all: ingest into {args.data} failed; see {run['log']}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Flags; --quick shrinks every step for a smoke test."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=REPO / "data" / "mnist-parquet", help="DATA (ingested if missing)")
    p.add_argument("--mnist-dir", type=Path, default=Path(os.environ.get("MNIST_DIR", REPO / "data" / "mnist")))
    p.add_argument("--out", type=Path, default=BENCH / "results")
    p.add_argument("--run-dir", type=Path, help="dist-mnist RUN (default OUT/runs/dist-mnist)")
    p.add_argument("--epochs", type=int, default=15, help="epochs for dist-mnist and PyTorch")
    p.add_argument("--torch-threads", type=int, default=2)
    p.add_argument("--skip-mllib", action="store_true")
    p.add_argument("--mllib-from", type=Path, help="reuse MLlib's result from this earlier results.json")
    p.add_argument("--mllib-budget", type=float, default=1200.0, help="seconds for all MLlib fits")
    p.add_argument("--quick", action="store_true", help="1 epoch, 120 s MLlib budget, 10 floor rounds")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.mllib_budget = 1, min(args.mllib_budget, 120.0)
    args.data, args.out = args.data.resolve(), args.out.resolve()
    args.run_dir = (args.run_dir or args.out / "runs" / "dist-mnist").resolve()
    return args


def main(argv: list[str] | None = None) -> int:
    """Run every step in order, then write the table, the raw JSON and the plot."""
    args = parse_args(argv)
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ensure_data(args, logs)
    n_train = count_rows(args.data / "train")

    systems = {"dist-mnist": run_dist_mnist(args, logs), "pytorch": run_torch(args, logs)}
    # MLlib chases dist-mnist's accuracy; without it, PyTorch's; without both, DL4J's ~0.97.
    target = next((s["accuracy"] for s in systems.values() if s.get("accuracy")), 0.97)
    systems["mllib"] = run_mllib(args, logs, target)
    floor = run_floor(args, logs)
    for s in systems.values():
        s.pop("stdout", None)
        report.add_throughput(s, n_train)

    ratios = report.ratios(systems, floor, n_train)
    settings = {"epochs": args.epochs, "quick": args.quick, "mllib_budget": args.mllib_budget, "n_train": n_train,
                "data": str(args.data), "torch_threads": args.torch_threads, "mllib_target": target}
    (args.out / "results.json").write_text(json.dumps(
        {"settings": settings, "systems": systems, "floor": floor, "ratios": ratios}, indent=2) + "\n")
    table = report.markdown(systems, floor, ratios, settings)
    (args.out / "results.md").write_text(table)
    report.plot(systems, args.out / "accuracy_vs_time.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
