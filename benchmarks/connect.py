"""A round and the tutorial from a Spark Connect client against the same from a classic session.

Both on this machine's local[2]: classic is `dist-mnist train --master local[2]` (the driver's
loop beside its JVM), Connect is `dist-mnist train --remote sc://127.0.0.1:PORT` against a
Connect server started here with `--master local[2]` (the loop in the client, the JVM in the
server). Each run is a whole process; pairs alternate, classic first; the figures are medians.

- rounds: sync mode for ROUNDS rounds (one global minibatch a round: the transport's cost
  dominates), on the persistent barrier stage (classic: the Unix socket of a local master;
  Connect: TCP with CURVE, the client being another process than the server) and on one Spark
  job a round (classic: RDD + broadcast; Connect: a DataFrame job with the vector in the
  closure; the fallback when the executors cannot reach the client), from metrics.json: mean
  round wall time and the overhead's median after the first.
- tutorial: the default run (15 epochs, average mode, W = 2), whole-process wall seconds and
  the test accuracy.

The load average is kept before, after each run and at the end (the machine may be shared);
benchmarks/docs.py renders connect.json into docs/performance.md's `connect` block.

    python benchmarks/connect.py --data data/mnist --out benchmarks/results    # writes connect.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from provenance import loadavg, provenance  # noqa: E402

from dist_mnist.files.atomic import atomic_write_json  # noqa: E402
from tests.connect import server  # noqa: E402

CONNECT_ENV = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE")


def train(where: list[str], data: str, sets: list[str]) -> dict:
    """One `dist-mnist train` process: its wall seconds, metrics.json and transport line."""
    with tempfile.TemporaryDirectory(prefix="dist-mnist-bench-connect-") as tmp:
        argv = [sys.executable, "-m", "dist_mnist.cli", "train", *where, "--data", data, "--out", f"{tmp}/RUN"]
        for item in sets:
            argv += ["--set", item]
        env = {k: v for k, v in os.environ.items() if k not in CONNECT_ENV}
        env.setdefault("SPARK_CONF_DIR", str(REPO / "conf"))
        t0 = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600, check=False)
        seconds = time.perf_counter() - t0
        if done.returncode:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}")
        metrics = json.loads(Path(tmp, "RUN", "metrics.json").read_text())
    transport = next((line for line in done.stdout.splitlines() if line.startswith("transport:")), "")
    # The machine is shared: the load right after each run says what it ran beside.
    return {"wall_seconds": round(seconds, 2), "metrics": metrics, "transport_line": transport, "loadavg": loadavg()}


def round_figures(run: dict) -> dict:
    """Mean round wall time (compute + waiting + overhead, without the driver's update) and the
    overhead's median after the first round, in ms."""
    r = run["metrics"]["rounds"]
    parts = sum(r[k]["total_seconds"] for k in ("executor", "straggler", "overhead"))
    return {
        "rounds": r["rounds"],
        "mean_round_ms": round(1000 * parts / max(r["rounds"], 1), 2),
        "overhead_median_after_first_ms": r["overhead_ms"]["median_after_first"],
        "transport": r["transport"],
        "transport_line": run["transport_line"],
        "loadavg": run["loadavg"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="DATA written by dist-mnist ingest")
    p.add_argument("--out", help="directory for connect.json")
    p.add_argument("--rounds", type=int, default=300, help="sync rounds on the barrier stage")
    p.add_argument("--job-rounds", type=int, default=30, help="sync rounds on one Spark job a round")
    p.add_argument("--pairs", type=int, default=3, help="classic/Connect pairs of each measurement")
    p.add_argument("--no-tutorial", action="store_true", help="skip the 15-epoch runs")
    args = p.parse_args()
    result = provenance("connect.py")
    result.update(rounds=args.rounds, job_rounds=args.job_rounds, pairs=args.pairs)
    with tempfile.TemporaryDirectory(prefix="dist-mnist-connect-server-") as tmp:
        srv = server.start(Path(tmp))
        try:
            where = {"classic": ["--master", "local[2]"], "connect": ["--remote", srv.url]}
            cases = {"barrier": (args.rounds, "barrier"), "jobs": (args.job_rounds, "jobs")}
            for name, (rounds, transport) in cases.items():
                sets = ["mode=sync", "epochs=1", f"max_rounds={rounds}", "workers=2", f"transport={transport}"]
                runs: dict[str, list[dict]] = {"classic": [], "connect": []}
                for _ in range(args.pairs):
                    for kind in ("classic", "connect"):
                        runs[kind].append(round_figures(train(where[kind], args.data, sets)))
                        print(name, kind, runs[kind][-1], flush=True)
                result[f"round_{name}"] = summarise(runs, "mean_round_ms")
            if not args.no_tutorial:
                runs = {"classic": [], "connect": []}
                for _ in range(args.pairs):
                    for kind in ("classic", "connect"):
                        run = train(where[kind], args.data, ["workers=2"])
                        runs[kind].append(
                            {
                                "wall_seconds": run["wall_seconds"],
                                "train_seconds": run["metrics"]["epochs"][-1]["elapsed_seconds"],
                                "accuracy": run["metrics"]["final"]["accuracy"],
                                "transport_line": run["transport_line"],
                                "loadavg": run["loadavg"],
                            }
                        )
                        print("tutorial", kind, runs[kind][-1], flush=True)
                result["tutorial"] = summarise(runs, "wall_seconds")
        finally:
            srv.stop()
    result["loadavg_after"] = loadavg()
    print(json.dumps({k: v for k, v in result.items() if k.startswith(("round_", "tutorial"))}, indent=1))
    if args.out:
        atomic_write_json(Path(args.out) / "connect.json", result)


def summarise(runs: dict[str, list[dict]], key: str) -> dict:
    """Every run, each kind's median of `key`, and Connect's median over classic's."""
    medians = {kind: statistics.median(r[key] for r in rs) for kind, rs in runs.items()}
    return {
        "runs": runs,
        "median": medians,
        "ratio_connect_to_classic": round(medians["connect"] / medians["classic"], 3),
    }


if __name__ == "__main__":
    main()
