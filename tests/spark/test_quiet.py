"""Spark's console log is quiet by default (conf/log4j2.properties) and --verbose brings INFO back."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ..support import REPO

SETTINGS = ["--set", "epochs=1", "--set", "layer_sizes=[784, 16, 10]"]


def _train(command: list[str], data, run, *extra: str, **env: str) -> subprocess.CompletedProcess:
    # a user's shell: not the settings this pytest process took on (its own session exported
    # SPARK_LOCAL_IP, which silences the JVM's early loopback warning and so its first log line)
    dropped = ("SPARK_CONF_DIR", "DIST_MNIST_SPARK_LOG_LEVEL", "SPARK_LOCAL_IP")
    full_env = {k: v for k, v in os.environ.items() if k not in dropped}
    full_env["PATH"] = f"{REPO / '.venv' / 'bin'}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.update(env)
    argv = [*command, "--data", str(data), "--out", str(run), *SETTINGS, *extra]
    done = subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "final test accuracy" in done.stdout
    return done


SPARK_SUBMIT = [
    "spark-submit",
    "--master",
    "local[2]",
    "--conf",
    "spark.ui.enabled=false",
    str(REPO / "jobs" / "train.py"),
]
DIST_MNIST = [sys.executable, "-m", "dist_mnist.cli", "train", "--master", "local[2]"]


DEFAULT_PROFILE = "Using Spark's default log4j profile"


@pytest.mark.parametrize(
    "command, env",
    [
        (SPARK_SUBMIT, {"SPARK_CONF_DIR": str(REPO / "conf")}),  # as make train
        (SPARK_SUBMIT, {}),  # outside make: the venv's Spark reads conf/
        (DIST_MNIST, {}),
    ],
    ids=["make-train", "bare-spark-submit", "dist-mnist"],
)
def test_no_info_lines_by_default(datasets, tmp_path, command, env):
    done = _train(command, datasets[2], tmp_path / "RUN", **env)
    info = [line for line in (done.stdout + done.stderr).splitlines() if " INFO " in line]
    assert not info, info[:5]
    # the project's log4j2.properties from the JVM's start (make .venv/.installed links conf/ into the venv's Spark)
    assert DEFAULT_PROFILE not in done.stderr, done.stderr[:2000]


def test_a_spark_without_our_conf_takes_it_once_python_runs(datasets, tmp_path):
    """A Spark installation whose conf/ has no log4j2.properties: its JVM starts on Spark's
    default profile and says so, once (its first log line, the loopback warning of a shell
    without SPARK_LOCAL_IP, comes before Python runs); from then on the project's file is in
    force (it silences Hadoop's native-library warning), not Spark's profile a second time."""
    (tmp_path / "conf").mkdir()
    done = _train(SPARK_SUBMIT, datasets[2], tmp_path / "RUN", SPARK_CONF_DIR=str(tmp_path / "conf"))
    assert done.stderr.count(DEFAULT_PROFILE) == 1, done.stderr[:2000]
    assert not [line for line in done.stderr.splitlines() if " INFO " in line or "NativeCodeLoader" in line]


def test_verbose_brings_sparks_info_back(datasets, tmp_path):
    done = _train(DIST_MNIST, datasets[2], tmp_path / "RUN", "--verbose")
    assert " INFO SparkContext: Running Spark version" in done.stderr  # from the JVM's start on
