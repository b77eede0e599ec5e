"""Test accuracy against worker count: the default config for every W, on the real MNIST.

Each W runs as its own process with the in-process transport (the same round functions as
the Spark transports; tests/spark/test_transports.py proves the models bit-identical), so W up
to 128 fits on a 2-core machine. Writes OUT/workers.json: per W, the test accuracy after every
epoch and the first epoch at or above the target (--merge keeps the other W's earlier runs).

    python benchmarks/workers.py --data DATA --out benchmarks/results [--workers 1 2 4] [--jobs 2] [--merge]

A study (docs/scaling.md, "Beyond 32 workers") appends each run, with its label, rule,
settings, per-epoch test accuracy and wall time, to OUT/workers-study.jsonl instead:

    python benchmarks/workers.py --data DATA --workers 64 --epochs 15 --study "DiLoCo outer" \
        [--rule warmup5] --set outer_learning_rate=0.7 --set outer_momentum=0.9
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

from dist_mnist.files.atomic import atomic_write_json

TARGET = 0.971
DEFAULT_WORKERS = (1, 2, 3, 4, 8, 16, 32, 64, 128)
EPOCHS: dict[int, int] = {}  # epochs by W where not the tutorial's 15 (none since the rule of docs/scaling.md)


# Study-only learning-rate rules tried against the package's own (lr_scaling): each maps
# (config, epoch) to the local steps' rate and is patched into the child process (install_rule),
# so a study needs no change to dist_mnist. "package" runs the package's rule unchanged.
def _linear(c, epoch: int) -> float:
    return c.learning_rate * max(1.0, c.workers / 2)


def _warmup(epochs: int):
    """Goyal et al.: from the tutorial's rate at epoch 0 linearly up to the linear rule's at epoch `epochs`."""

    def rule(c, epoch: int) -> float:
        return c.learning_rate + (_linear(c, epoch) - c.learning_rate) * min(1.0, epoch / epochs)

    return rule


def _sqrt_beyond(w0: int):
    """Linear up to w0 workers, then sqrt(W / w0) more (Krizhevsky's square-root rule)."""

    def rule(c, epoch: int) -> float:
        w = c.workers
        return c.learning_rate * (max(1.0, w / 2) if w <= w0 else (w0 / 2) * (w / w0) ** 0.5)

    return rule


def _cap(lr_max: float):
    def rule(c, epoch: int) -> float:
        return min(_linear(c, epoch), max(c.learning_rate, lr_max))

    return rule


RULES = {
    "package": None,
    "warmup5": _warmup(5),
    "warmup3": _warmup(3),
    "sqrt16": _sqrt_beyond(16),
    "sqrt8": _sqrt_beyond(8),
    "sqrt32": _sqrt_beyond(32),
    "sqrt64": _sqrt_beyond(64),
    "sqrt16-warmup5": None,
    "cap0.048": _cap(0.048),
}
RULES["sqrt16-warmup5"] = lambda c, e: c.learning_rate + (_sqrt_beyond(16)(c, e) - c.learning_rate) * min(1.0, e / 5)


def install_rule(name: str) -> None:
    """Make average mode's local steps use RULES[name](config, epoch) in this process (in-process transport:
    the workers run here, one after another, so the round being computed names the epoch)."""
    from dist_mnist import modes

    rule, current = RULES[name], {"epoch": 0}
    if rule is None:
        return
    work = modes.Average.work

    def patched_work(self, plan, w, batcher, flat, spec):
        current["epoch"] = spec.epoch
        return work(self, plan, w, batcher, flat, spec)

    modes.Average.work = patched_work
    modes.Average.local_learning_rate = lambda self, c: rule(c, current["epoch"])


def run_one(data: str, workers: int, epochs: int, sets: list[str], scratch: Path, rule: str = "package") -> dict:
    """Train the default config at W workers in a child process; its per-epoch test accuracy."""
    scratch.mkdir(parents=True, exist_ok=True)
    run = scratch / f"W{workers}"
    cmd = [
        sys.executable,
        __file__,
        "--child-rule",
        rule,
        "train",
        "--data",
        data,
        "--out",
        str(run),
        "--overwrite",
        "--set",
        "transport=inprocess",
        "--set",
        f"workers={workers}",
        "--set",
        f"epochs={epochs}",
        *[a for s in sets for a in ("--set", s)],
    ]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}  # one BLAS thread, as on an executor
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return {"workers": workers, "error": proc.stderr.strip().splitlines()[-1:]}
    metrics = json.loads((run / "metrics.json").read_text())
    meta = json.loads((run / "model.json").read_text())
    accuracy = [e.get("test_accuracy") for e in metrics["epochs"]]
    reached = next((i + 1 for i, a in enumerate(accuracy) if a is not None and a >= TARGET), None)
    return {
        "workers": workers,
        "epochs": epochs,
        "test_accuracy": accuracy,
        "final": metrics["final"]["accuracy"],
        "epochs_to_target": reached,
        "rounds_per_epoch": metrics["rounds"]["rounds"] // epochs,
        "local_learning_rate": meta["local_learning_rate"],
        "config": meta["config"],
        "rule": rule,
        "process_seconds": round(time.perf_counter() - t0, 1),
    }


def append_study(path: Path, label: str, sets: list[str], result: dict) -> None:
    """One JSON line a run: the rule's label, its settings, the per-epoch test accuracy and the wall time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    line = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "label": label,
        "sets": sets,
        "git": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip(),
        **{k: v for k, v in result.items() if k != "config"},
    }
    with open(path, "a") as f:  # one line a run, appended whole
        f.write(json.dumps(line) + "\n")


def main() -> None:
    if sys.argv[1:2] == ["--child-rule"]:  # a run_one child: the CLI's train with a study rule installed
        from dist_mnist.cli import commands as cli

        install_rule(sys.argv[2])
        sys.exit(cli.main(sys.argv[3:]))
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", required=True, help="dataset directory written by dist-mnist ingest")
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--workers", type=int, nargs="+", default=list(DEFAULT_WORKERS))
    p.add_argument("--jobs", type=int, default=2, help="runs at once (each uses one core)")
    p.add_argument("--set", action="append", default=[], help="extra config settings for every run")
    p.add_argument("--epochs", type=int, default=0, help="epochs of every run (default: 15)")
    p.add_argument("--rule", choices=list(RULES), default="package", help="study-only learning-rate rule")
    p.add_argument(
        "--study",
        metavar="LABEL",
        help="a study run: append each run, labelled LABEL, to OUT/workers-study.jsonl (not workers.json)",
    )
    p.add_argument(
        "--merge",
        action="store_true",
        help="keep OUT/workers.json's runs of the W not given (with their own date and command)",
    )
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(
                run_one, args.data, w, args.epochs or EPOCHS.get(w, 15), args.set, Path(scratch) / str(i), args.rule
            )
            for i, w in enumerate(args.workers)
        ]
        results = []
        for f in futures:
            results.append(f.result())
            print(json.dumps({k: v for k, v in results[-1].items() if k != "config"}), flush=True)
            if args.study:
                append_study(Path(args.out) / "workers-study.jsonl", args.study, args.set, results[-1])
        if args.study:
            return
    out = Path(args.out) / "workers.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    for r in results:
        r.update(date=time.strftime("%Y-%m-%d"), command=command)
    if args.merge and out.exists():
        old = json.loads(out.read_text())
        kept = [
            {"date": old["date"], "command": old["command"], **r}
            for r in old["runs"]
            if r["workers"] not in args.workers
        ]
        results = sorted(kept + results, key=lambda r: r["workers"])
    doc = {"target": TARGET, "date": time.strftime("%Y-%m-%d"), "data": args.data, "command": command, "runs": results}
    atomic_write_json(out, doc)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
