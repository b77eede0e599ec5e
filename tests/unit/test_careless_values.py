"""Careless values end in one line that names the key or the file, before anything is written."""

from __future__ import annotations

import subprocess

import pytest

from ..support import REPO
from ..support.cli import one_line_error
from ..support.tiny_runs import tiny_data, train_cli


@pytest.fixture
def data(tmp_path):
    return tiny_data(tmp_path / "data")


def assert_nothing_written(tmp_path):
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]  # no RUN, no RUN.partial, no lock


def test_a_network_that_cannot_fit_is_one_line_naming_layer_sizes(data, tmp_path, capsys):
    assert train_cli(data, tmp_path / "RUN", sets=["layer_sizes=[784, 100000000, 10]"]) == 2
    line = one_line_error(capsys, "train")
    assert line.startswith(
        "dist-mnist train: error: layer_sizes [784, 100000000, 10]: a run of this network needs about "
    )
    assert " GiB " in line and line.endswith("GiB this machine has available; choose smaller layers")
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize(
    "item, message",
    [
        ("epochs=3\nseed = 9", "--set epochs: a value is one TOML value on one line, got '3\\nseed = 9'"),
        ("seed=-1", "seed must be >= 0, got -1"),
    ],
)
def test_a_careless_set_is_one_line_naming_its_key(data, tmp_path, capsys, item, message):
    assert train_cli(data, tmp_path / "RUN", sets=[item]) == 2
    assert one_line_error(capsys, "train") == f"dist-mnist train: error: {message}"
    assert_nothing_written(tmp_path)


@pytest.mark.parametrize("content", [b"\x93\x00\xffbinary", b'{"epochs": 3}'], ids=["binary", "json"])
def test_a_config_that_is_not_toml_names_the_file(data, tmp_path, capsys, content):
    config = tmp_path / "data" / "run.conf"
    config.write_bytes(content)
    assert train_cli(data, tmp_path / "RUN", "--config", str(config)) == 2
    line = one_line_error(capsys, "train")
    assert (
        line.startswith(f"dist-mnist train: error: {config}: not a TOML file (")
        and "--config takes a TOML file" in line
    )
    config.unlink()
    assert_nothing_written(tmp_path)


@pytest.mark.mnist
def test_ingest_says_what_it_did_in_a_sentence(mnist_dir, tmp_path, capsys):
    from dist_mnist.cli import commands as cli

    assert cli.main(["ingest", "--source", str(mnist_dir), "--out", str(tmp_path / "DATA")]) == 0
    assert capsys.readouterr().out == (
        f"ingested 60,000 training rows and 10,000 test rows into {tmp_path / 'DATA'} "
        "(2 part files a split, shuffled with seed 123)\n"
    )


@pytest.mark.parametrize(
    "path", ["runs/tutorial", "predictions/test", "data/mnist", "mlruns.db", "mlartifacts/1", "models/blobs"]
)
def test_gitignore_covers_what_the_documented_commands_write(path):
    """What the README's and docs' commands write into the checkout is not offered to git."""
    found = subprocess.run(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO, check=False)
    assert found.returncode == 0, f"{path} is not ignored"
