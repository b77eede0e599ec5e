"""`predict` and `evaluate` on a path that is not a readable split: one line on stderr, exit 2,
and Spark never started (the check runs before the JVM does)."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from dist_mnist.cli import commands as cli
from dist_mnist.data.parquet import to_table
from dist_mnist.files.model import save_model
from dist_mnist.nn.model import init_params

from ..support.cli import one_line_error


@pytest.fixture
def run(tmp_path):
    run = tmp_path / "RUN"
    run.mkdir()
    save_model(run, init_params([784, 16, 10], 1), {"layer_sizes": [784, 16, 10]})
    return run


@pytest.fixture
def data(tmp_path):
    """DATA/train and DATA/test of two part files each, and DATA/metadata.json: a dataset root."""
    root = tmp_path / "DATA"
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        (root / split).mkdir(parents=True)
        for i in range(2):
            images, labels = rng.integers(0, 256, (20, 784), dtype=np.uint8), rng.integers(0, 10, 20)
            pq.write_table(to_table(images, labels), root / split / f"part-{i:05d}.parquet")
    (root / "metadata.json").write_text("{}")
    return root


def _command(command: str, run, data, tmp_path) -> list[str]:
    if command == "predict":
        return ["predict", "--model", str(run), "--data", str(data), "--out", str(tmp_path / "PRED")]
    return ["evaluate", "--model", str(run), "--data", str(data)]


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_missing_path(command, run, tmp_path, capsys, no_spark):
    assert cli.main(_command(command, run, tmp_path / "nope", tmp_path)) == 2
    assert one_line_error(capsys, command).endswith(f"{tmp_path / 'nope'}: no such dataset")
    assert not (tmp_path / "PRED").exists()


@pytest.mark.parametrize("command", ["predict", "evaluate"])
@pytest.mark.parametrize("without", [None, "metadata.json", "train"])
def test_dataset_root_instead_of_a_split(command, without, run, data, tmp_path, capsys, no_spark, monkeypatch):
    if without == "metadata.json":  # train/ and test/ alone make a root too
        (data / without).unlink()
    elif without == "train":  # and so does metadata.json alone
        for f in (data / "train").iterdir():
            f.unlink()
        (data / "train").rmdir()
    monkeypatch.chdir(tmp_path)  # the path as the user typed it, relative
    assert cli.main(_command(command, run, "DATA", tmp_path)) == 2
    assert one_line_error(capsys, command).endswith("DATA: a dataset root, not a split; pass DATA/test (or DATA/train)")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_truncated_parquet_file_is_named(command, run, data, tmp_path, capsys, no_spark):
    part = data / "test" / "part-00001.parquet"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    assert cli.main(_command(command, run, data / "test", tmp_path)) == 2
    line = one_line_error(capsys, command)
    assert f"{part}: not a Parquet file" in line, line


def test_predict_on_a_directory_without_parquet_files(run, tmp_path, capsys, no_spark):
    (tmp_path / "empty").mkdir()
    assert cli.main(_command("predict", run, tmp_path / "empty", tmp_path)) == 2
    assert one_line_error(capsys, "predict").endswith(f"{tmp_path / 'empty'}: no Parquet files")


def test_evaluate_json_into_a_missing_directory_names_it(run, data, tmp_path, capsys, no_spark):
    target = tmp_path / "no" / "such" / "x.json"
    argv = ["evaluate", "--model", str(run), "--data", str(data / "test"), "--json", str(target)]
    assert cli.main(argv) == 2
    line = one_line_error(capsys, "evaluate")
    assert line.endswith(f"{tmp_path / 'no' / 'such'}: no such directory (for --json {target})"), line


def test_evaluate_json_that_is_a_directory(run, data, tmp_path, capsys, no_spark):
    argv = ["evaluate", "--model", str(run), "--data", str(data / "test"), "--json", str(tmp_path)]
    assert cli.main(argv) == 2
    assert one_line_error(capsys, "evaluate").endswith(f"{tmp_path}: is a directory (--json takes a file name)")
