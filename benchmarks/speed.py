"""Whole-process time to the tutorial's accuracy: dist-mnist against single-process PyTorch, in pairs.

For each dist-mnist system, --pairs times: the peers' runs (which of them goes first rotates from pair
to pair, so none always follows the previous pair's Spark run), then one run of the system, each its own
process timed whole (JVM, imports and data loading included); before each run the script waits (at
most --idle-wait seconds) until the 1-minute load average is below --idle-below (1.0: idle on these 2
cores) and records the load it started at and whether it had to give up waiting; each pair gives a
ratio (system / the faster of the two PyTorch scripts in that pair), and the median of the pairs'
ratios is the figure.
  pytorch   benchmarks/torch_reference.py: the tutorial's recipe, plain synchronous Nesterov SGD with
            torch's fused SGD kernel, batch 128, 2 threads, 15 epochs, test accuracy each epoch (as
            dist-mnist computes it);
and, in every pair before the system, the cross-checks (--peers):
  pytorch-plain  benchmarks/torch_plain.py: the same recipe as PyTorch's examples write the loop (an
            outside review found an independent script faster than the peer; the faster of the
            two in a pair is that pair's denominator);
  numpy     benchmarks/numpy_reference.py: dist-mnist's own math and kernels in one process, no Spark
            (sync mode's oracle, 2 BLAS threads): what Spark costs or gains on one machine;
the systems:
  default   spark-submit --master local[2] jobs/train.py: average mode, 2 workers, the persistent
            transport (local steps with an outer Nesterov step: a different algorithm from PyTorch's);
  sync      the same with --set mode=sync: the tutorial's exact math (one global minibatch of 128 a
            round, 7,035 rounds), the same algorithm as PyTorch's;
  sync-inprocess  (not run unless asked) sync mode with --set transport=inprocess: the same round
            functions and seeds in one process without Spark.
A pair with a run started above the threshold is recorded but marked `busy`; docs.py will not render
the table from such a file. Targets, by the median: sync <= 1.5x, default <= 0.6x (goal 0.5x), each at >= 97.1% test
accuracy. Writes OUT/speed.json after every pair; prints each run's line.

    python benchmarks/speed.py --data DATA --mnist-dir $MNIST_DIR --pairs 3
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

from dist_mnist.files.atomic import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
SPARK_SUBMIT = str(Path(PY).parent / "spark-submit")
TARGETS = {"default": 0.6, "sync": 1.5}  # ratio to PyTorch, by the median of the pairs
TORCH = ("pytorch", "pytorch-plain")  # a pair's ratio is to the faster of these in that pair
GOALS = {"default": 0.5}
MIN_ACCURACY = 0.971  # the tutorial's accuracy
PEERS = {
    "pytorch": ["benchmarks/torch_reference.py"],
    "pytorch-plain": ["benchmarks/torch_plain.py"],
    "numpy": ["benchmarks/numpy_reference.py"],
}
SYSTEMS = {"default": [], "sync": ["mode=sync"], "sync-inprocess": ["mode=sync", "transport=inprocess", "workers=2"]}


IDLE = {"below": 1.0, "wait": 240.0}  # set from --idle-below and --idle-wait


def wait_for_idle() -> dict:
    """Wait (at most IDLE["wait"] s) until the 1-minute load average is below IDLE["below"]:
    the load it ended at, the seconds waited, and whether the machine was idle by then."""
    t0 = time.monotonic()
    while os.getloadavg()[0] >= IDLE["below"] and time.monotonic() - t0 < IDLE["wait"]:
        time.sleep(2)
    load = list(os.getloadavg())
    return {"loadavg_before": load, "waited_seconds": round(time.monotonic() - t0, 1), "idle": load[0] < IDLE["below"]}


def timed(cmd: list[str], env: dict, log: Path) -> tuple[float, str, int]:
    t0 = time.perf_counter()
    with open(log, "w") as err:
        proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=err, text=True, check=False)
    return time.perf_counter() - t0, proc.stdout, proc.returncode


def peer_run(name: str, mnist_dir: str, scratch: Path, env: dict, tag: str) -> dict:
    """One single-process peer, timed whole; its own summary line gives accuracy and training time."""
    cmd = [PY, *PEERS[name], "--mnist-dir", mnist_dir, "--threads", "2"]
    before = wait_for_idle()
    seconds, out, rc = timed(cmd, env, scratch / f"{name}-{tag}.log")
    if rc != 0:
        return {"system": name, "status": "failed", "returncode": rc, **before}
    summary = json.loads([line for line in out.splitlines() if '"system"' in line][-1])
    return {
        "system": name,
        "status": "ok",
        "process_seconds": round(seconds, 2),
        **before,
        "loadavg_after": list(os.getloadavg()),
        "accuracy": summary["accuracy"],
        "train_seconds": summary["train_seconds"],
        **{k: summary[k] for k in ("omp_wait_policy", "optimizer") if k in summary},
        "command": f"python {PEERS[name][0]} --threads 2",
    }


def dist_mnist_run(name: str, data: str, scratch: Path, env: dict, tag: str) -> dict:
    run, sets = scratch / f"{name}-{tag}", SYSTEMS[name]
    flags = ["--data", data, "--out", str(run), "--overwrite", *[a for s in sets for a in ("--set", s)]]
    if name == "sync-inprocess":
        cmd = [PY, "-m", "dist_mnist.cli", "train", *flags]
    else:
        cmd = [SPARK_SUBMIT, "--master", "local[2]", "jobs/train.py", *flags]
    before = wait_for_idle()
    seconds, out, rc = timed(cmd, env, scratch / f"{name}-{tag}.log")
    if rc != 0:
        tail = (scratch / f"{name}-{tag}.log").read_text()[-400:]
        return {"system": name, "status": "failed", "returncode": rc, **before, "log_tail": tail}
    metrics = json.loads((run / "metrics.json").read_text())
    phases = dict(re.findall(r"(\w+) ([\d.]+)", out[out.rindex("phases (s):") :].splitlines()[0]))
    phases = {k: float(v) for k, v in phases.items()}
    rounds = metrics["rounds"]
    return {
        "system": name,
        "status": "ok",
        "process_seconds": round(seconds, 2),
        **before,
        "loadavg_after": list(os.getloadavg()),
        "accuracy": metrics["final"]["accuracy"],
        "transport": rounds.get("transport"),
        "rounds": rounds["rounds"],
        "phases_seconds": {
            "outside the phases (imports, exit)": round(seconds - sum(phases.values()), 2),
            **{k: round(v, 2) for k, v in phases.items()},
        },
        "round_ms": {k: round(rounds[k]["mean_ms"], 3) for k in ("executor", "straggler", "overhead", "update")},
        "epochs": [{k: e.get(k) for k in ("epoch", "test_accuracy", "elapsed_seconds")} for e in metrics["epochs"]],
        "command": " ".join(cmd[:1] + [Path(c).name if c.startswith("/") else c for c in cmd[1:]]),
    }


def rate_pair(pair: dict) -> dict:
    """The pair's ratios: to every peer that finished, and (`ratio`) to the faster PyTorch script of
    the pair (an outside review found an independent script faster than the peer: the faster
    one is the denominator, whichever it is in that pair)."""
    runs = {"pytorch": pair["pytorch"], **pair.get("peers", {})}
    done = {name: r for name, r in runs.items() if r["status"] == "ok"}
    system = pair["system"]
    for key in ("ratio", "ratios", "fastest_pytorch"):
        pair.pop(key, None)
    started = [r["loadavg_before"][0] for r in [*runs.values(), system] if "loadavg_before" in r]
    pair["busy"] = any(load >= IDLE["below"] for load in started)  # a run began on a shared machine
    if system["status"] != "ok":
        return pair
    pair["ratios"] = {name: round(system["process_seconds"] / r["process_seconds"], 3) for name, r in done.items()}
    torch_runs = [name for name in TORCH if name in done]
    if torch_runs:
        fastest = min(torch_runs, key=lambda name: done[name]["process_seconds"])
        pair["fastest_pytorch"], pair["ratio"] = fastest, pair["ratios"][fastest]
    return pair


def summarize(name: str, pairs: list[dict]) -> dict:
    """Medians over the pairs where the system and a PyTorch script finished; the target's verdict from them."""
    pairs = [rate_pair(p) for p in pairs]
    ok = [p for p in pairs if "ratio" in p]
    out = {"pairs": pairs, "pairs_ok": len(ok), "pairs_busy": sum(p["busy"] for p in pairs)}
    if not ok:
        return out
    med = statistics.median

    def fastest(p: dict) -> dict:
        return p["pytorch"] if p["fastest_pytorch"] == "pytorch" else p["peers"][p["fastest_pytorch"]]

    ratio = med([p["ratio"] for p in ok])
    acc = med([p["system"]["accuracy"] for p in ok])
    out.update(
        {
            "median_ratio": round(ratio, 3),
            "median_pytorch_seconds": round(med([fastest(p)["process_seconds"] for p in ok]), 2),
            "median_system_seconds": round(med([p["system"]["process_seconds"] for p in ok]), 2),
            "median_accuracy": acc,
            "median_pytorch_accuracy": med([fastest(p)["accuracy"] for p in ok]),
        }
    )
    extras = {}
    for peer in ["pytorch", *ok[0].get("peers", {})]:
        runs = [({"pytorch": p["pytorch"]} | p["peers"])[peer] for p in ok if peer in p["ratios"]]
        done = [p for p in ok if peer in p["ratios"]]
        if done:
            extras[peer] = {
                "pairs_ok": len(done),
                "median_seconds": round(med([r["process_seconds"] for r in runs]), 2),
                "median_train_seconds": round(med([r["train_seconds"] for r in runs]), 2),
                "median_accuracy": med([r["accuracy"] for r in runs]),
                "median_ratio": round(med([p["ratios"][peer] for p in done]), 3),
            }
    if extras:
        out["peers"] = extras  # system / peer within each pair, the median over the pairs
    if name in TARGETS:
        out["target_ratio"], out["min_accuracy"] = TARGETS[name], MIN_ACCURACY
        out["target_met"] = ratio <= TARGETS[name] and acc >= MIN_ACCURACY
    if name in GOALS:
        out["goal_ratio"], out["goal_met"] = GOALS[name], ratio <= GOALS[name] and acc >= MIN_ACCURACY
    return out


METHOD = (
    "pairs (PyTorch and the cross-check peers, the first of them rotating from pair to pair, then the "
    "system), each process timed whole; ratio = system / "
    "the faster of the two PyTorch scripts in the pair (and system / each peer); the figure is the median of "
    "the pairs' ratios"
)


def resummarize(path: Path) -> None:
    """Derive the ratios, medians and verdicts again from the runs a speed.json holds (no run)."""
    doc = json.loads(path.read_text())
    IDLE["below"] = doc.setdefault("idle_below", IDLE["below"])
    doc["systems"] = {name: summarize(name, s["pairs"]) for name, s in doc["systems"].items()}
    doc["method"], doc["summarized"] = METHOD, time.strftime("%Y-%m-%d %H:%M")
    atomic_write_json(path, doc)
    print(f"wrote {path}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--summarize",
        type=Path,
        metavar="SPEED_JSON",
        help="only derive the ratios and verdicts again from the runs in this file",
    )
    p.add_argument("--data")
    p.add_argument("--mnist-dir", help="the four MNIST .gz files (for PyTorch)")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results"))
    p.add_argument("--pairs", type=int, default=3, help="pairs (PyTorch, system) per system; the median counts")
    p.add_argument(
        "--peers",
        nargs="*",
        default=["pytorch-plain", "numpy"],
        choices=sorted(set(PEERS) - {"pytorch"}),
        help="cross-checks run in every pair besides PyTorch (none: --peers with no names)",
    )
    p.add_argument("--systems", nargs="+", default=["default", "sync"], choices=sorted(SYSTEMS))
    p.add_argument("--idle-below", type=float, default=IDLE["below"], help="start a run only below this 1-min load")
    p.add_argument("--idle-wait", type=float, default=IDLE["wait"], help="seconds to wait for that before each run")
    p.add_argument("--pairs-for", nargs="*", default=[], metavar="SYSTEM=N", help="fewer or more pairs for one system")
    args = p.parse_args()
    IDLE.update(below=args.idle_below, wait=args.idle_wait)
    if args.summarize:
        return resummarize(args.summarize)
    if not args.data or not args.mnist_dir:
        p.error("--data and --mnist-dir are needed to run the pairs")
    if args.pairs < 1:
        p.error("--pairs must be >= 1")
    counts = dict.fromkeys(args.systems, args.pairs)
    for item in args.pairs_for:
        key, _, n = item.partition("=")
        if key not in counts or not n.isdigit() or int(n) < 1:
            p.error(f"--pairs-for {item}: want SYSTEM=N with SYSTEM among {args.systems} and N >= 1")
        counts[key] = int(n)
    env = {
        **os.environ,
        "PYSPARK_PYTHON": PY,
        "SPARK_CONF_DIR": os.environ.get("SPARK_CONF_DIR", str(REPO / "conf")),
        "PATH": f"{Path(PY).parent}:{os.environ['PATH']}",
    }
    doc = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{os.cpu_count()} cores",
        "idle_below": IDLE["below"],
        "command": "python benchmarks/speed.py " + " ".join(sys.argv[1:]),
        "method": METHOD,
        "systems": {},
    }
    path = Path(args.out) / "speed.json"
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for name in args.systems:
            pairs = []
            for i in range(counts[name]):
                order = ["pytorch", *args.peers]
                order = order[i % len(order) :] + order[: i % len(order)]  # each script first in turn
                runs = {}
                for peer in order:
                    runs[peer] = peer_run(peer, args.mnist_dir, scratch, env, f"{name}-{i}")
                    print(json.dumps(runs[peer]), flush=True)
                torch_run, others = runs["pytorch"], {peer: runs[peer] for peer in args.peers}
                sys_run = dist_mnist_run(name, args.data, scratch, env, str(i))
                print(json.dumps({k: v for k, v in sys_run.items() if k != "epochs"}), flush=True)
                pairs.append({"pair": i + 1, "order": order, "pytorch": torch_run, "peers": others, "system": sys_run})
                doc["systems"][name] = summarize(name, pairs)
                atomic_write_json(path, doc)  # after every pair: a cut-short run keeps what it measured
            s = doc["systems"][name]
            print(json.dumps({k: v for k, v in s.items() if k != "pairs"}), flush=True)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
