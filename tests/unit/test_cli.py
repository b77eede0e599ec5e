"""The command line: user errors end in exit 2 and one line on stderr, never a traceback."""

import os
import time
import urllib.error
from pathlib import Path

import pytest

from dist_mnist.cli import commands as cli
from dist_mnist.data import download as download_module
from dist_mnist.driver.progress import Interrupted

from ..support.cli import one_line_error


def test_ingest_without_source(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("MNIST_DIR", raising=False)
    assert cli.main(["ingest", "--out", str(tmp_path / "DATA")]) == 2
    line = one_line_error(capsys, "ingest")
    assert "--source" in line and "MNIST_DIR" in line
    assert not (tmp_path / "DATA").exists()


def test_ingest_with_missing_source_dir(tmp_path, capsys):
    assert cli.main(["ingest", "--source", str(tmp_path / "nope"), "--out", str(tmp_path / "DATA")]) == 2
    assert str(tmp_path / "nope") in one_line_error(capsys, "ingest")
    assert not (tmp_path / "DATA").exists()


def test_ingest_takes_mnist_dir_from_the_environment(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MNIST_DIR", str(tmp_path / "from-env"))
    assert cli.main(["ingest", "--out", str(tmp_path / "DATA")]) == 2
    assert str(tmp_path / "from-env") in one_line_error(capsys, "ingest")


def test_train_with_unknown_set_key_fails_before_spark(tmp_path, capsys, no_spark):
    argv = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "RUN"), "--set", "learning_rat=0.1"]
    assert cli.main(argv) == 2
    line = one_line_error(capsys, "train")
    assert "'learning_rat'" in line and "did you mean 'learning_rate'" in line
    assert not (tmp_path / "RUN").exists() and not (tmp_path / "RUN.partial").exists()


@pytest.mark.parametrize("item", ["learning_rate=nan", "batch_size=0", "mode=async", "layer_sizes=[784, 1]"])
def test_train_with_bad_config_values_fails_before_spark(tmp_path, capsys, no_spark, item):
    assert cli.main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "RUN"), "--set", item]) == 2
    assert item.split("=")[0] in one_line_error(capsys, "train")


def test_train_with_missing_config_file(tmp_path, capsys, no_spark):
    argv = ["train", "--data", str(tmp_path), "--out", str(tmp_path / "RUN"), "--config", str(tmp_path / "x.toml")]
    assert cli.main(argv) == 2
    assert str(tmp_path / "x.toml") in one_line_error(capsys, "train")


def test_download_offline(tmp_path, capsys, monkeypatch):
    def offline(url, timeout):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(download_module, "fetch", offline)
    out = tmp_path / "mnist"
    assert cli.main(["download", "--out", str(out)]) == 1  # a failure, not a bad input
    line = one_line_error(capsys, "download")
    assert "--source" in line and "MNIST_DIR" in line and "name resolution" in line
    assert not out.exists()  # nothing written, not even the directory


def test_usage_errors_exit_2_through_argparse(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["train"])
    assert info.value.code == 2
    assert "--data" in capsys.readouterr().err


class Py4JJavaError(Exception):
    """Stands in for py4j's class: user_message goes by the class name and the text."""


def test_user_message_unwraps_executor_errors():
    text = (
        "An error occurred while calling o42.treeAggregate.\n"
        ": org.apache.spark.SparkException: Job aborted due to stage failure: ...\n"
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):\n"
        '  File "/x/dist_mnist/data/parquet.py", line 43, in from_table\n'
        "ValueError: file:/d/train/part-00000.parquet: label 12 at row 3 is outside the model's classes 0-9\n"
        "\tat org.apache.spark.api.python.BasePythonRunner...\n"
    )
    assert cli.user_message(Py4JJavaError(text)) == (
        "file:/d/train/part-00000.parquet: label 12 at row 3 is outside the model's classes 0-9"
    )
    assert cli.user_message(Py4JJavaError("java.lang.OutOfMemoryError: Java heap space")) is None
    assert cli.user_message(TypeError("a bug")) is None
    assert cli.user_message(ValueError("bad value")) == "bad value"
    assert cli.user_message(KeyboardInterrupt()) == "interrupted"


def test_bugs_are_not_swallowed(monkeypatch, tmp_path):
    def bug(*args, **kwargs):
        raise TypeError("a real bug")

    monkeypatch.setattr("dist_mnist.data.ingest.ingest", bug)
    with pytest.raises(TypeError, match="a real bug"):
        cli.main(["ingest", "--source", str(tmp_path), "--out", str(tmp_path / "D")])


def test_interrupt_exits_130(monkeypatch, tmp_path, capsys):
    def interrupted(*args, **kwargs):
        raise Interrupted("interrupted at epoch 2; the last checkpoint is in R.partial", Path("R.partial"), True)

    monkeypatch.setattr("dist_mnist.data.ingest.ingest", interrupted)
    assert cli.main(["ingest", "--source", str(tmp_path), "--out", str(tmp_path / "D")]) == 130
    assert "R.partial" in one_line_error(capsys, "ingest")


@pytest.mark.parametrize(
    "command, args",
    [
        ("train", ["--data", "D", "--out", "R", "--set", "bogus=1"]),
        ("evaluate", ["--model", "nope", "--data", "D"]),
        ("ingest", ["--source", "nope", "--out", "D"]),
    ],
)
def test_verbose_asks_for_sparks_info_log(command, args, tmp_path, capsys, monkeypatch, no_spark):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(cli.LOG_LEVEL_VAR, "WARN")  # restored after the test
    assert cli.main([command, *args, "--verbose"]) == 2
    one_line_error(capsys, command)
    assert os.environ[cli.LOG_LEVEL_VAR] == "INFO"  # read by conf/log4j2.properties and get_context


@pytest.mark.mnist
def test_a_ctrl_c_while_the_process_exits_is_one_line(mnist_dir, tmp_path):
    """Everything done and printed, the interpreter exiting (at-exit handlers, as pyspark's run):
    a Ctrl-C then is one line and status 130, not a KeyboardInterrupt traceback in a handler."""
    import shutil
    import signal
    import subprocess
    import sys

    for f in mnist_dir.glob("*.gz"):
        shutil.copy(f, tmp_path / f.name)
    code = (
        "import atexit, sys, time\n"
        "atexit.register(time.sleep, 30)  # a slow at-exit handler: where the Ctrl-C lands\n"
        "from dist_mnist.cli import run\n"
        f"run(['download', '--out', {str(tmp_path)!r}])\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-u", "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    lines = [child.stdout.readline() for _ in range(4)]
    assert all("present and verified" in line for line in lines), lines
    time.sleep(1.0)  # the command is done: the interpreter is in its at-exit handlers
    child.send_signal(signal.SIGINT)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 130 and err == "interrupted while exiting; the command had finished\n", err
