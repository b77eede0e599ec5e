"""`dist-mnist evaluate` and `predict` from a Spark Connect client (--remote, SPARK_REMOTE): the
same scores and predictions as a classic local[2] run of the same command; bad input is one line."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dist_mnist.data.parquet import to_table
from dist_mnist.driver import train

from ..support import REPO
from ..support.datasets import write_dataset
from ..support.fakes import learnable
from .client import SYNC, classic_env


@pytest.fixture(scope="module")
def trained(cspark, tmp_path_factory):
    """(DATA, RUN): a small dataset and a model trained on it from this Connect client."""
    root = tmp_path_factory.mktemp("ccli")
    data = write_dataset(root / "DATA", learnable(512, seed=0), learnable(300, seed=1), 2)
    train(cspark, dataclasses.replace(SYNC, epochs=1, max_rounds=4, transport="jobs"), str(data), str(root / "RUN"))
    return data, root / "RUN"


def cli(*args, remote: str | None = None, env_remote: str | None = None):
    """A real `dist-mnist` in a process of its own: classic local[2], or a Connect client of
    `remote` (as --remote) or `env_remote` (as SPARK_REMOTE)."""
    env = classic_env(SPARK_CONF_DIR=str(REPO / "conf"))
    argv = [sys.executable, "-m", "dist_mnist.cli", *map(str, args)]
    if remote:
        argv += ["--remote", remote]
    elif env_remote:
        env["SPARK_REMOTE"] = env_remote
    else:
        argv += ["--master", "local[2]"]
    return subprocess.run(argv, check=False, capture_output=True, text=True, timeout=600, env=env)


def test_evaluate_with_remote_gives_the_classic_numbers(connect_server, trained, tmp_path):
    data, run = trained
    remote = cli(
        "evaluate",
        "--model",
        run,
        "--data",
        data / "test",
        "--json",
        tmp_path / "connect.json",
        remote=connect_server.url,
    )
    classic = cli("evaluate", "--model", run, "--data", data / "test", "--json", tmp_path / "classic.json")
    assert remote.returncode == 0, remote.stderr[-3000:]
    assert classic.returncode == 0, classic.stderr[-3000:]
    scores = json.loads((tmp_path / "connect.json").read_text())
    assert scores == json.loads((tmp_path / "classic.json").read_text())
    assert np.sum(scores["confusion"]) == 300
    # the same report, each ending in the line that names its own scores file
    assert remote.stdout.replace("connect.json", "classic.json") == classic.stdout and "Accuracy:" in remote.stdout
    assert remote.stdout.rstrip().endswith(f"scores written to {tmp_path / 'connect.json'}"), remote.stdout[-300:]


def _rows(out) -> list[tuple]:
    table = pq.read_table(out)
    return sorted(
        zip(
            table.column("label").to_pylist(),
            table.column("image").to_pylist(),
            table.column("prediction").to_pylist(),
            table.column("probability").to_pylist(),
            table.column("rawPrediction").to_pylist(),
        )
    )


def test_predict_with_spark_remote_writes_the_classic_predictions(connect_server, trained, tmp_path):
    data, run = trained
    remote = cli(
        "predict", "--model", run, "--data", data / "test", "--out", tmp_path / "connect", env_remote=connect_server.url
    )
    classic = cli("predict", "--model", run, "--data", data / "test", "--out", tmp_path / "classic")
    assert remote.returncode == 0, remote.stderr[-3000:]
    assert classic.returncode == 0, classic.stderr[-3000:]
    assert remote.stdout.strip() == f"wrote 300 predictions to {tmp_path / 'connect'}"
    connect_rows = _rows(tmp_path / "connect")
    assert len(connect_rows) == 300 and connect_rows == _rows(tmp_path / "classic")

    again = cli(
        "predict", "--model", run, "--data", data / "test", "--out", tmp_path / "connect", remote=connect_server.url
    )
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1] == (
        f"dist-mnist predict: error: {tmp_path / 'connect'}: already exists (pass --overwrite to replace it)"
    )
    replaced = cli(
        "predict",
        "--model",
        run,
        "--data",
        data / "test",
        "--out",
        tmp_path / "connect",
        "--overwrite",
        remote=connect_server.url,
    )
    assert replaced.returncode == 0, replaced.stderr[-3000:]
    assert _rows(tmp_path / "connect") == connect_rows


def test_a_bad_image_under_connect_is_one_line_naming_its_file_and_row(cspark, connect_server, trained, tmp_path):
    """No accumulator under Connect: the task raises the located error, the client says it in one line."""
    from dist_mnist.spark.predict import predict_to_parquet

    _, run = trained
    data = tmp_path / "BAD"
    data.mkdir()
    rng = np.random.default_rng(0)
    pq.write_table(to_table(rng.integers(0, 256, (40, 784), np.uint8), np.zeros(40)), data / "part-00000.parquet")
    table = to_table(rng.integers(0, 256, (60, 784), np.uint8), np.zeros(60))
    images = table.column("image").to_pylist()
    images[37] = images[37][:783]
    pq.write_table(table.set_column(1, "image", pa.array(images, pa.binary())), data / "part-00001.parquet")
    expected = f"{data / 'part-00001.parquet'}: image at row 37 has 783 bytes, expected 784"

    with pytest.raises(ValueError) as caught:
        predict_to_parquet(cspark, str(run), str(data), str(tmp_path / "PRED"))
    assert str(caught.value) == expected
    done = cli("predict", "--model", run, "--data", data, "--out", tmp_path / "PRED", remote=connect_server.url)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1] == f"dist-mnist predict: error: {expected}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["BAD"]  # no output, no temporary directory
