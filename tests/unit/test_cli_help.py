"""Every command's --help shows examples that parse; exit status 0, 2, 1 and 130 as documented."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from dist_mnist.cli import commands as cli
from dist_mnist.cli import parser as cli_parser

COMMANDS = ["download", "ingest", "train", "evaluate", "predict", "report", "export"]


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_examples_and_exit_codes(command, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    examples = out.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert any(line.strip().startswith(f"dist-mnist {command} ") for line in examples)
    assert "0 success, 2 usage or input error, 1 failure, 130 interrupted" in out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_example_parses(command):
    for line in cli_parser.EXAMPLES[command]:
        argv = shlex.split(line)
        if argv[0] == "spark-submit":  # spark-submit [options] jobs/<command>.py flags...
            job = next(i for i, a in enumerate(argv) if a.endswith(f"jobs/{command}.py"))
            argv = [command, *argv[job + 1 :]]
        else:
            assert argv[:2] == ["dist-mnist", command]
            argv = argv[1:]
        assert cli_parser.parser().parse_args(argv).command == command


def test_top_level_help_points_to_the_commands(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert all(command in out for command in COMMANDS) and "exit status" in out


@pytest.mark.parametrize("argv", [[], ["nope"], ["train", "--data", "D"], ["ingest", "--partitions", "two"]])
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(
    "error, code",
    [
        (ValueError("bad value"), 2),
        (FileNotFoundError("x: no such file"), 2),
        (FileExistsError("x: already exists"), 2),
        (RuntimeError("Java not found"), 1),
        (KeyboardInterrupt(), 130),
    ],
)
def test_exit_codes_by_kind_of_error(error, code, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr("dist_mnist.data.download.download", fail)
    assert cli.main(["download", "--out", "x"]) == code
    assert capsys.readouterr().err.startswith("dist-mnist download: error: ")


def test_runtime_error_on_an_executor_is_a_failure():
    class Py4JJavaError(Exception):
        pass

    text = "org.apache.spark.api.python.PythonException: ...\nRuntimeError: worker lost its shard\n"
    assert cli.exit_code(Py4JJavaError(text)) == 1
    assert cli.exit_code(Py4JJavaError(text.replace("RuntimeError", "ValueError"))) == 2


def test_a_bug_exits_1_with_its_traceback(tmp_path):
    code = (
        "import sys\nfrom dist_mnist.cli import commands as cli\n"
        "def bug(args):\n    raise TypeError('a real bug')\n"
        "cli._run = bug\nsys.exit(cli.main(['download', '--out', 'x']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "TypeError: a real bug" in done.stderr


def test_success_exits_0(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("dist_mnist.data.download.download", lambda out: [])
    assert cli.main(["download", "--out", str(tmp_path)]) == 0
