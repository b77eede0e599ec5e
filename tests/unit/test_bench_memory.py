"""benchmarks/memory.py's sampler: process kinds, the process tree, and peaks it must see.

The sampler is what makes docs/performance.md's memory table checkable, so it is checked against
memory whose size the test itself decides: processes that touch a known number of bytes.
"""

import subprocess
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))
memory = pytest.importorskip("memory")

pytestmark = pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")

JAVA = [
    "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
    "-cp",
    "x",
    "-Xmx2g",
    "org.apache.spark.deploy.SparkSubmit",
    "--master",
    "local[2]",
    "jobs/train.py",
]
DAEMON = ["/venv/bin/python", "-m", "pyspark.daemon", "pyspark.worker"]


@pytest.mark.parametrize(
    "argv, parent, kind",
    [
        (JAVA, ["bash", "spark-class"], "jvm"),
        (
            ["/usr/bin/java", "-cp", "x", "org.apache.spark.launcher.Main", "org.apache.spark.deploy.SparkSubmit"],
            ["bash"],
            "launcher",
        ),
        (DAEMON, JAVA, "python_daemon"),
        (DAEMON, DAEMON, "python_worker"),  # a forked worker keeps the daemon's command line
        (["/venv/bin/python", "-m", "pyspark.worker"], JAVA, "python_worker"),
        (["/venv/bin/python3", "jobs/train.py", "--data", "d"], JAVA, "driver_python"),
        (["bash", "/venv/bin/spark-submit", "jobs/train.py"], [], "other"),
        (
            ["bash", "/venv/pyspark/bin/spark-class", "org.apache.spark.deploy.SparkSubmit", "jobs/train.py"],
            [],
            "other",
        ),
    ],
)
def test_classify(argv, parent, kind):
    assert memory.classify(argv, parent) == kind


def test_descendants_walks_the_whole_tree_and_nothing_else():
    table = {10: (1, ["a"]), 11: (10, ["b"]), 12: (11, ["c"]), 13: (10, ["d"]), 20: (1, ["other"]), 21: (20, ["e"])}
    assert sorted(memory.descendants(10, table)) == [10, 11, 12, 13]
    assert memory.descendants(99, table) == []


def test_process_table_knows_this_process_and_its_parent():
    import os

    ppid, argv = memory.process_table()[os.getpid()]
    assert ppid == os.getppid() and argv == [
        a for a in Path("/proc/self/cmdline").read_bytes().decode().split("\0") if a
    ]


def test_read_rollup_of_self_is_consistent():
    mem = memory.read_rollup(__import__("os").getpid())
    assert mem["Rss"] > 0 and 0 < mem["Pss"] <= mem["Rss"]
    assert mem["Pss_Anon"] + mem["Pss_File"] + mem.get("Pss_Shmem", 0) == pytest.approx(mem["Pss"], abs=8 * 1024)
    assert memory.read_rollup(2**22 + 12345) is None  # no such process


HOLD = (
    "import sys, time; b = bytearray({n}); b[::4096] = b'\\x01' * len(b[::4096]); "
    "print('ready', flush=True); time.sleep(30)"
)


def test_sampler_sees_the_memory_a_process_tree_touches():
    # a parent touching 120 MB that starts a child touching 60 MB: private pages, so RSS ~ PSS
    parent_code = (
        f"import subprocess, sys; c = subprocess.Popen([sys.executable, '-c', {HOLD.format(n=60_000_000)!r}],"
        " stdout=subprocess.PIPE); c.stdout.readline(); " + HOLD.format(n=120_000_000)
    )
    proc = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        sampler = memory.Sampler(proc.pid, interval=0.05)
        sampler.start()
        time.sleep(0.5)
        peaks = sampler.stop()
    finally:
        proc.kill()
        proc.wait()
    python = peaks["kinds"]["driver_python"]  # both are plain `python -c` processes
    assert python["processes_seen"] == 2 and peaks["samples"] >= 3
    assert 180e6 <= python["peak_sum"]["Pss"] <= 180e6 + 60e6  # the touched bytes plus two interpreters
    assert 120e6 <= python["peak_one_process"]["Rss"] <= 120e6 + 30e6
    assert python["peak_one_process"]["VmHWM"] >= python["peak_one_process"]["Rss"]
    assert peaks["peak_total_pss"]["Pss"] == python["peak_sum"]["Pss"]


def test_a_peak_between_samples_shows_in_vmhwm():
    # 150 MB touched and freed before the sampler starts: RSS never shows it, the kernel's high-water mark does
    code = (
        "import time; b = bytearray(150_000_000); b[::4096] = b'\\x01' * len(b[::4096]); del b; "
        "print('ready', flush=True); time.sleep(30)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        sampler = memory.Sampler(proc.pid, interval=0.05)
        sampler.start()
        time.sleep(0.3)
        one = sampler.stop()["kinds"]["driver_python"]["peak_one_process"]
    finally:
        proc.kill()
        proc.wait()
    assert one["Rss"] < 100e6 <= 150e6 <= one["VmHWM"]
