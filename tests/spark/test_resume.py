"""Checkpoints and the run directory: interrupt + resume equals an uninterrupted run."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest

from dist_mnist import driver
from dist_mnist.cli import commands as cli
from dist_mnist.config import TrainConfig
from dist_mnist.driver.checkpoint import read_arrays, write_arrays
from dist_mnist.files.model import load_model
from dist_mnist.nn.model import init_params

from ..support import REPO
from ..support.tiny_runs import interrupt_at_round

# 1024 rows / 128 = 8 rounds an epoch; 2 epochs; a checkpoint every 3 rounds and at epoch ends
SYNC = TrainConfig(layer_sizes=(784, 32, 10), batch_size=128, epochs=2, mode="sync", checkpoint_every_rounds=3)
# 512 rows a partition / 64 = 8 local steps, 2 a round: 4 rounds an epoch; outer Nesterov state too
AVERAGE = TrainConfig(
    layer_sizes=(784, 32, 10), batch_size=64, epochs=2, mode="average", averaging_frequency=2, checkpoint_every_rounds=3
)


@pytest.mark.parametrize(
    "config, stop_at, checkpoint_round",
    [
        (SYNC, 7, 6),  # mid-epoch checkpoint (every 3 rounds)
        (SYNC, 10, 9),  # after the epoch-end checkpoint (round 8) and one more at 9
        (AVERAGE, 6, 4),  # the epoch-end checkpoint at round 4 (round 3's is older)
    ],
    ids=["sync-mid-epoch", "sync-second-epoch", "average"],
)
def test_interrupted_then_resumed_equals_uninterrupted(
    spark, datasets, tmp_path, quiet, monkeypatch, config, stop_at, checkpoint_round
):
    data = str(datasets[2])
    driver.train(spark, config, data, str(tmp_path / "A"), log=quiet)

    run = tmp_path / "B"
    interrupt_at_round(monkeypatch, stop_at)
    with pytest.raises(KeyboardInterrupt) as info:
        driver.train(spark, config, data, str(run), log=quiet)
    assert "--resume" in str(info.value) and "B.partial" in str(info.value)
    monkeypatch.undo()
    assert not run.exists()
    _, _, _, meta = read_arrays(tmp_path / "B.partial")
    assert meta["global_round"] == checkpoint_round

    lines = []
    driver.train(spark, config, data, str(run), resume=True, log=lines.append)
    assert any(line.startswith("resuming") for line in lines)
    assert not (tmp_path / "B.partial").exists() and not (run / "checkpoint.npz").exists()

    a, _ = load_model(tmp_path / "A")
    b, _ = load_model(run)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    history_a = json.loads((tmp_path / "A" / "metrics.json").read_text())["epochs"]
    history_b = json.loads((run / "metrics.json").read_text())["epochs"]
    assert [h["epoch"] for h in history_b] == [1, 2]
    for ha, hb in zip(history_a, history_b):
        assert hb["test_accuracy"] == ha["test_accuracy"]
        assert hb["train_loss"] == pytest.approx(ha["train_loss"], rel=1e-12), "epoch train_loss after resume"


def test_existing_run_is_refused_then_overwritten(spark, datasets, tmp_path, quiet, capsys, monkeypatch):
    config = dataclasses.replace(SYNC, max_rounds=2)
    run = tmp_path / "RUN"
    driver.train(spark, config, str(datasets[2]), str(run), log=quiet)
    first = (run / "model.npz").read_bytes()
    with pytest.raises(FileExistsError) as info:
        driver.train(spark, config, str(datasets[2]), str(run), log=quiet)
    assert str(run) in str(info.value) and "--overwrite" in str(info.value) and "--resume" in str(info.value)
    with pytest.raises(FileExistsError, match="already finished"):
        driver.train(spark, config, str(datasets[2]), str(run), resume=True, log=quiet)
    assert (run / "model.npz").read_bytes() == first

    # the same through the command line: one line, exit 2
    monkeypatch.setenv("SPARK_CONF_DIR", str(REPO / "conf"))
    argv = [
        "train",
        "--data",
        str(datasets[2]),
        "--out",
        str(run),
        "--master",
        "local[2]",
        "--set",
        "mode=sync",
        "--set",
        "layer_sizes=[784, 32, 10]",
        "--set",
        "max_rounds=2",
    ]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "--overwrite" in err

    config2 = dataclasses.replace(config, seed=7)
    driver.train(spark, config2, str(datasets[2]), str(run), overwrite=True, log=quiet)
    _, meta = load_model(run)
    assert meta["config"]["seed"] == 7
    assert sorted(os.listdir(tmp_path)) == ["RUN"]  # no staging or old directories left


def test_resume_without_checkpoint(spark, datasets, tmp_path, quiet):
    with pytest.raises(FileNotFoundError) as info:
        driver.train(spark, SYNC, str(datasets[2]), str(tmp_path / "RUN"), resume=True, log=quiet)
    assert "RUN.partial" in str(info.value) and "no checkpoint" in str(info.value)


def _fake_checkpoint(run_dir, config: TrainConfig) -> None:
    staging = run_dir.with_name(run_dir.name + ".partial")
    staging.mkdir()
    params = init_params(list(config.layer_sizes), config.seed)
    write_arrays(
        staging,
        params,
        {k: np.zeros_like(v) for k, v in params.items()},
        {},
        {"epoch": 0, "round_in_epoch": 3, "global_round": 3, "config": config.to_dict(), "history": [], "timings": {}},
    )


def test_resume_with_a_different_config_names_the_keys(spark, datasets, tmp_path, quiet):
    run = tmp_path / "RUN"
    _fake_checkpoint(run, SYNC)
    changed = dataclasses.replace(SYNC, learning_rate=0.01, batch_size=64)
    with pytest.raises(ValueError) as info:
        driver.train(spark, changed, str(datasets[2]), str(run), resume=True, log=quiet)
    msg = str(info.value)
    assert "learning_rate: 0.006 -> 0.01" in msg and "batch_size: 128 -> 64" in msg
    assert "epochs" not in msg
    assert (tmp_path / "RUN.partial" / "checkpoint.npz").exists()  # kept for a correct --resume


def test_unfinished_run_is_refused_without_resume_or_overwrite(spark, datasets, tmp_path, quiet):
    run = tmp_path / "RUN"
    _fake_checkpoint(run, SYNC)
    with pytest.raises(FileExistsError) as info:
        driver.train(spark, SYNC, str(datasets[2]), str(run), log=quiet)
    assert "RUN.partial" in str(info.value) and "--resume" in str(info.value)
    assert (tmp_path / "RUN.partial" / "checkpoint.npz").exists()
