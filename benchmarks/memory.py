"""What a training run really holds in memory, per kind of process, against the data size; W = 1, 2, 4.

For each W, `spark-submit --master local[M] jobs/train.py --set workers=W --set epochs=E` runs
for real (M = 2, or W if larger, so the persistent barrier stage gets a slot per worker), while a
sampler thread polls /proc/<pid>/smaps_rollup every ~0.2 s over the whole process tree of the
spark-submit and keeps the peaks of RSS and PSS for each kind of process:

  jvm            the spark-submit JVM: the py4j gateway, and in local mode also the executor
                 (the driver JVM is the executor JVM here; there is no other JVM)
  driver_python  the Python driver (jobs/train.py): the round loop and the parameters
  python_daemon  pyspark.daemon, which forks the Python workers
  python_worker  the Python workers: shards (memory-mapped), Arrow buffers from reading the
                 Parquet, the float copies made for minibatches and evaluation, NumPy and ZeroMQ
  launcher/other the short-lived launcher JVM and the bash wrappers of spark-submit

PSS (proportional set size) divides each shared page among the processes that map it, so PSS
summed over processes counts every page once: the shard file mapped by several workers, and
the pages a worker shares with the daemon it was forked from. RSS counts shared pages in full.
Everything is set against the data size: train + test images and labels as uint8. Runs are
short (2 epochs) because the peaks come with the first rounds and evaluations; the default
list also runs W = 2 for the tutorial's 15 epochs (`2:15`) to check that claim. Writes
OUT/memory.json.

    python benchmarks/memory.py --data DATA --out benchmarks/results      # ~3 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from provenance import loadavg, provenance  # the script's own directory is on sys.path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
SAMPLE_SECONDS = 0.2
FIELDS = ("Rss", "Pss", "Pss_Anon", "Pss_File", "Pss_Shmem")  # from /proc/<pid>/smaps_rollup, in kB
KINDS = ("jvm", "driver_python", "python_daemon", "python_worker", "launcher", "other")
BYTES_PER_ROW = 784 + 1  # uint8 pixels + uint8 label


def read_rollup(pid: int) -> dict[str, int] | None:
    """RSS and PSS fields of one process in bytes, plus VmHWM, or None if it is gone or not readable."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            lines = f.read().splitlines()
        with open(f"/proc/{pid}/status") as f:
            # VmHWM: the kernel's peak RSS of the process, which catches peaks between two samples
            lines += [line for line in f.read().splitlines() if line.startswith("VmHWM:")]
    except OSError:
        return None
    out = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in FIELDS or key == "VmHWM":
            out[key] = int(rest.split()[0]) * 1024
    return out if "Rss" in out else None


def process_table() -> dict[int, tuple[int, list[str]]]:
    """pid -> (parent pid, argv) for every process visible in /proc."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        # the command name in parentheses may hold spaces; the parent pid is the 2nd field after it
        table[int(entry)] = (int(stat[stat.rindex(")") + 2 :].split()[1]), argv)
    return table


def descendants(root: int, table: dict[int, tuple[int, list[str]]]) -> list[int]:
    """root and every process below it."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in table:
            out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def classify(argv: list[str], parent_argv: list[str]) -> str:
    """The kind of a process of the spark-submit tree, from its command line and its parent's."""
    text = " ".join(argv)
    if "org.apache.spark.launcher.Main" in text:
        return "launcher"  # spark-class runs it once to build the real java command line
    if argv and os.path.basename(argv[0]) == "java":
        return "jvm"
    if "pyspark.daemon" in text:  # the daemon forks the workers, which keep its command line
        return "python_worker" if "pyspark.daemon" in " ".join(parent_argv) else "python_daemon"
    if "pyspark.worker" in text:  # spark.python.use.daemon=false starts workers directly
        return "python_worker"
    if argv and os.path.basename(argv[0]).startswith("python"):
        return "driver_python"
    return "other"


class Sampler(threading.Thread):
    """Polls the process tree under `root` and keeps the peaks of each kind of process."""

    def __init__(self, root: int, interval: float = SAMPLE_SECONDS):
        super().__init__(daemon=True)
        self.root, self.interval, self.t0 = root, interval, time.perf_counter()
        self.done = threading.Event()
        self.samples = 0
        self.sample_ms: list[float] = []
        # per kind: the peak of the sum over its processes at one instant, and the largest single process
        self.peak_sum = {k: {"Rss": 0, "Pss": 0, "processes": 0, "at_seconds": None} for k in KINDS}
        self.peak_one = {k: dict.fromkeys((*FIELDS, "VmHWM"), 0) for k in KINDS}
        self.peak_total_pss = {"Pss": 0, "at_seconds": None}
        self.seen: dict[str, set[int]] = {k: set() for k in KINDS}

    def run(self) -> None:
        while not self.done.is_set():
            t = time.perf_counter()
            self.sample()
            self.sample_ms.append(1000 * (time.perf_counter() - t))
            self.done.wait(max(0.0, self.interval - (time.perf_counter() - t)))

    def sample(self) -> None:
        table = process_table()
        sums = {k: {"Rss": 0, "Pss": 0, "processes": 0} for k in KINDS}
        for pid in descendants(self.root, table):
            ppid, argv = table[pid]
            kind = classify(argv, table.get(ppid, (0, []))[1])
            mem = read_rollup(pid)
            if mem is None:
                continue
            self.seen[kind].add(pid)
            for f in self.peak_one[kind]:
                self.peak_one[kind][f] = max(self.peak_one[kind][f], mem.get(f, 0))
            sums[kind]["Rss"] += mem.get("Rss", 0)
            sums[kind]["Pss"] += mem.get("Pss", 0)
            sums[kind]["processes"] += 1
        now = round(time.perf_counter() - self.t0, 1)
        for kind, s in sums.items():
            if s["Pss"] > self.peak_sum[kind]["Pss"]:
                self.peak_sum[kind] = {**s, "at_seconds": now}
            self.peak_sum[kind]["Rss"] = max(self.peak_sum[kind]["Rss"], s["Rss"])
        total = sum(s["Pss"] for s in sums.values())
        if total > self.peak_total_pss["Pss"]:
            self.peak_total_pss = {"Pss": total, "at_seconds": now}
        self.samples += 1

    def stop(self) -> dict:
        self.done.set()
        self.join()
        ms = sorted(self.sample_ms) or [0.0]
        return {
            "samples": self.samples,
            "interval_seconds": self.interval,
            "sample_ms_median": round(ms[len(ms) // 2], 1),
            "kinds": {
                k: {
                    "processes_seen": len(self.seen[k]),
                    "peak_sum": self.peak_sum[k],
                    "peak_one_process": self.peak_one[k],
                }
                for k in KINDS
                if self.seen[k]
            },
            "peak_total_pss": self.peak_total_pss,
        }


def data_bytes(data: Path) -> int:
    """uint8 size of train + test: 784 pixel bytes and one label byte a row, rows from the Parquet footers."""
    import pyarrow.parquet as pq

    files = sorted(data.glob("train/*.parquet")) + sorted(data.glob("test/*.parquet"))
    if not files:
        raise SystemExit(f"memory.py: no Parquet files under {data}/train or {data}/test")
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files) * BYTES_PER_ROW


def run_once(args, workers: int, epochs: int, scratch: Path, env: dict) -> dict:
    """One training run under the sampler; its peaks, exit status and the trainer's own figures."""
    master = f"local[{max(2, workers)}]"
    run_dir = scratch / f"run-W{workers}-E{epochs}"
    cmd = [
        str(Path(PY).parent / "spark-submit"),
        "--master",
        master,
        "jobs/train.py",
        "--data",
        str(args.data),
        "--out",
        str(run_dir),
        "--overwrite",
        "--set",
        f"workers={workers}",
        "--set",
        f"epochs={epochs}",
    ]
    log = scratch / f"train-W{workers}-E{epochs}.log"
    before = loadavg()
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=f, stderr=subprocess.STDOUT)
        sampler = Sampler(proc.pid)
        sampler.start()
        rc = proc.wait()
        peaks = sampler.stop()
    row = {
        "workers": workers,
        "epochs": epochs,
        "master": master,
        "returncode": rc,
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "loadavg_before": before,
        "loadavg_after": loadavg(),
        **peaks,
        "command": " ".join(["spark-submit", *cmd[1:]]).replace(str(run_dir), "RUN"),
    }
    if rc != 0:
        row["error"] = " | ".join(log.read_text().strip().splitlines()[-3:])
        return row
    rounds = json.loads((run_dir / "metrics.json").read_text())["rounds"]
    # what the trainer itself reports, for comparison: PSS of the shard mappings only, and
    # the driver's Python peak RSS from getrusage (RUSAGE_SELF: the JVM child is not in it)
    row["trainer_reports"] = {k: rounds.get(k) for k in ("transport", "shard_memory_bytes", "driver_peak_rss_bytes")}
    fallback = [line for line in log.read_text().splitlines() if "fall" in line.lower()]
    if fallback:
        row["transport_note"] = fallback[0].strip()
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, required=True, help="dist-mnist's Parquet DATA (train/ and test/)")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    p.add_argument("--runs", default="1,2,4,2:15", help="comma-separated W or W:EPOCHS (default epochs: --epochs)")
    p.add_argument("--epochs", type=int, default=2, help="epochs of a run that names none")
    args = p.parse_args(argv)
    try:
        runs = [(int(w), int(e or args.epochs)) for w, _, e in (r.partition(":") for r in args.runs.split(","))]
    except ValueError:
        p.error(f"--runs must be W or W:EPOCHS, comma-separated, got {args.runs!r}")
    args.data = args.data.resolve()
    doc = {
        **provenance("memory.py", argv),
        "data_uint8_bytes": data_bytes(args.data),
        "sample_seconds": SAMPLE_SECONDS,
        "runs": [],
        "notes": [
            "local mode: the spark-submit JVM is both the py4j gateway and the executor.",
            "PSS sums count a shared page once; RSS sums count it in every process that maps it.",
        ],
    }
    env = {
        **os.environ,
        "PYSPARK_PYTHON": PY,
        "SPARK_CONF_DIR": os.environ.get("SPARK_CONF_DIR", str(REPO / "conf")),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    out = args.out / "memory.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    from dist_mnist.files.atomic import atomic_write_json

    with tempfile.TemporaryDirectory(prefix="dist-mnist-memory-") as tmp:
        for w, e in runs:
            row = run_once(args, w, e, Path(tmp), env)
            doc["runs"].append(row)
            print(
                json.dumps({k: row[k] for k in ("workers", "epochs", "master", "returncode", "wall_seconds")}),
                flush=True,
            )
            doc["loadavg_after"] = loadavg()
            atomic_write_json(out, doc)
    print(f"wrote {out}")
    return 0 if all(r["returncode"] == 0 for r in doc["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
