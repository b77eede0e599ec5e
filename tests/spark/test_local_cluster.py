"""The cluster path in the ordinary Spark tier: local-cluster[2,1,1024], separate executor JVMs on
this host, no daemons (as Spark's TorchDistributor and xgboost.spark test themselves).

Its executors run a Python that has numpy, pyarrow and pyzmq but not dist_mnist (worker_python),
so every run here also shows the package reaching them without --py-files. The round channel is
TCP with CURVE, as on a real cluster; the models equal local[2]'s bit for bit.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..support import REPO
from ..support.cli import error_lines
from ..support.datasets import write_dataset
from ..support.fakes import learnable
from ..support.models import assert_identical, read_params
from ..support.processes import Driver, clean_env

MASTER = "local-cluster[2,1,1024]"
SYNC = ["layer_sizes=[784, 16, 10]", "mode=sync", "batch_size=32", "workers=2"]
CURVE = r"transport: persistent barrier stage of 2 tasks, rounds over ZeroMQ \(CURVE-encrypted\) at tcp://\S+:\d+$"
RELAUNCHED = "transport: barrier stage relaunched (generation 2)"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """512 training rows (16 sync rounds an epoch at batch 32), 128 test rows, 2 part files each."""
    return write_dataset(tmp_path_factory.mktemp("lc") / "DATA", learnable(512, seed=0), learnable(128, seed=1), 2)


def env_for(executor_python: Path) -> dict[str, str]:
    """The driver's environment: loopback, this project's conf/, executors on `executor_python`."""
    return clean_env(SPARK_LOCAL_IP="127.0.0.1", SPARK_CONF_DIR=str(REPO / "conf"), PYSPARK_PYTHON=str(executor_python))


def train_argv(master: str, data: Path, run: Path, sets: list[str]) -> list[str]:
    argv = [sys.executable, "-m", "dist_mnist.cli", "train", "--master", master, "--data", str(data), "--out", str(run)]
    for item in sets:
        argv += ["--set", item]
    return argv


def attempt(master: str, data: Path, run: Path, sets: list[str], python: Path) -> subprocess.CompletedProcess:
    """`dist-mnist train` in a child process, its executors on `python`."""
    argv, env = train_argv(master, data, run, sets), env_for(python)
    return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def train(master: str, data: Path, run: Path, sets: list[str], python: Path) -> subprocess.CompletedProcess:
    done = attempt(master, data, run, sets, python)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict:
    """The local[2] models every local-cluster run must equal: 2 epochs, and 60 epochs (the kill test's)."""
    root = tmp_path_factory.mktemp("lc-reference")
    train("local[2]", data, root / "short", [*SYNC, "epochs=2"], Path(sys.executable))
    train("local[2]", data, root / "long", [*SYNC, "epochs=60", "log_every_rounds=1"], Path(sys.executable))
    return {"short": read_params(root / "short"), "long": read_params(root / "long")}


@pytest.mark.parametrize("transport", ["auto", "jobs"])
def test_both_transports_equal_local_2_over_curve_with_the_package_shipped(
    data, reference, worker_python, tmp_path, transport
):
    done = train(MASTER, data, tmp_path / "RUN", [*SYNC, "epochs=2", f"transport={transport}"], worker_python)
    if transport == "auto":  # the persistent stage, over TCP with CURVE, chosen at once: no fallback
        assert re.search(CURVE, done.stdout, re.MULTILINE), done.stdout
    assert "one Spark job a round, because" not in done.stdout
    assert error_lines(done.stderr) == [], done.stderr
    assert_identical(read_params(tmp_path / "RUN"), reference["short"])


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def executor_jvms(driver_pid: int) -> list[int]:
    """The executor JVMs a local-cluster driver started (CoarseGrainedExecutorBackend), by pid."""
    found = []
    for pid in descendants(driver_pid):
        try:
            if b"CoarseGrainedExecutorBackend" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.append(pid)
        except OSError:
            continue
    return sorted(found)


def test_a_killed_executor_jvm_is_replaced_and_the_barrier_stage_relaunched(data, reference, worker_python, tmp_path):
    """An executor JVM killed during the barrier stage: the round in flight is redone once the
    cluster has started a replacement, on a relaunched barrier stage (not a Spark job a round)."""
    run = tmp_path / "RUN"
    sets = [*SYNC, "epochs=60", "log_every_rounds=1"]
    driver = Driver(train_argv(MASTER, data, run, sets), tmp_path / "driver.log", env_for(worker_python), REPO)
    try:
        driver.wait_for_line(CURVE, timeout=300)
        driver.wait_for_line(r"epoch 2/60 round 1/16", timeout=120)
        jvms = executor_jvms(driver.proc.pid)
        assert len(jvms) == 2, jvms
        victim = jvms[-1]
        pythons = descendants(victim)  # its Python daemon and barrier task: stopped first, so the
        for pid in pythons:  # round in flight cannot finish before the JVM is gone
            os.kill(pid, signal.SIGSTOP)
        os.kill(victim, signal.SIGKILL)
        for pid in pythons:
            os.kill(pid, signal.SIGKILL)
        assert driver.wait(timeout=600) == 0, driver.tail()
    finally:
        driver.stop()
    out = driver.output
    assert RELAUNCHED in out and "falling back to one Spark job a round" not in out, out[-3000:]
    assert_identical(read_params(run), reference["long"])


def test_an_executor_python_without_numpy_is_one_line_before_anything_runs(data, bare_python, tmp_path):
    t0 = time.monotonic()
    done = attempt(MASTER, data, tmp_path / "RUN", [*SYNC, "epochs=2"], bare_python)
    assert done.returncode == 1, done.stdout[-2000:] + done.stderr[-2000:]
    assert error_lines(done.stderr) == [
        f"dist-mnist train: error: an executor cannot run dist-mnist's tasks: on {os.uname().nodename}, "
        f"{bare_python} (Python {'.'.join(map(str, sys.version_info[:3]))}) cannot import numpy, pyarrow, zmq "
        "(help: give every executor a Python with the project's packages: --conf spark.pyspark.python=PATH, "
        "an environment archive (--archives env.tar.gz#env --conf spark.pyspark.python=./env/bin/python), "
        "or the project's image (docker/Dockerfile))"
    ]
    assert "Lost task" not in done.stderr and "training" not in done.stdout  # no retries; nothing trained
    assert not (tmp_path / "RUN").exists() and not (tmp_path / "RUN.partial").exists()
    assert time.monotonic() - t0 < 300


def test_spark_submit_of_the_job_ships_the_package_itself(data, reference, worker_python, tmp_path):
    """`spark-submit jobs/train.py` on a cluster master, without --py-files."""
    spark_submit = Path(sys.executable).parent / "spark-submit"
    argv = [str(spark_submit), "--master", MASTER, "--conf", "spark.ui.enabled=false", str(REPO / "jobs" / "train.py")]
    argv += ["--data", str(data), "--out", str(tmp_path / "RUN")]
    for item in [*SYNC, "epochs=2"]:
        argv += ["--set", item]
    env = env_for(worker_python)
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # as with the venv active
    env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    done = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert re.search(CURVE, done.stdout, re.MULTILINE), done.stdout
    assert_identical(read_params(tmp_path / "RUN"), reference["short"])


ESTIMATOR = """
import sys
from pyspark.sql import SparkSession
from dist_mnist.ml import MLPClassifier

spark = SparkSession.builder.master(sys.argv[1]).config("spark.ui.enabled", "false").getOrCreate()
train = spark.read.parquet(sys.argv[2] + "/train")
estimator = MLPClassifier(featuresCol="image", layers=[784, 16, 10], mode="sync", workers=2, maxIter=2, blockSize=32)
model = estimator.fit(train)
scored = model.transform(spark.read.parquet(sys.argv[2] + "/test"))
print("scored", scored.where("prediction = label").count(), "of", scored.count())
spark.stop()
"""


def test_the_estimator_in_a_classic_session_ships_the_package_for_fit_and_transform(data, worker_python, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", ESTIMATOR, MASTER, str(data)],
        env=env_for(worker_python),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    right, total = re.search(r"scored (\d+) of (\d+)", done.stdout).groups()
    assert int(total) == 128 and int(right) > 64  # learnable data: well above chance after one fit
