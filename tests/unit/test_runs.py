"""A run directory's life (runs.py), directly: refusals, the partial directory (RUN.partial), the swap into
place, and model.json's content."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from dist_mnist.config import TrainConfig
from dist_mnist.data.features import FeatureKind
from dist_mnist.driver.checkpoint import CHECKPOINT_NPZ
from dist_mnist.driver.runs import (
    RUN_FILES,
    check_run_dir,
    discard_unless_checkpointed,
    finish_run_dir,
    model_meta,
    partial_dir,
    prepare_run_dir,
    write_outputs,
)
from dist_mnist.nn.model import init_params

CONFIG = TrainConfig(layer_sizes=(784, 8, 10), workers=4)


def test_an_existing_run_is_refused_unless_overwritten_or_resumed(tmp_path):
    run = tmp_path / "RUN"
    check_run_dir(run, resume=False, overwrite=False)  # nothing there: fine
    run.mkdir()
    with pytest.raises(FileExistsError, match=r"already exists .*--overwrite.*--resume"):
        check_run_dir(run, resume=False, overwrite=False)
    check_run_dir(run, resume=False, overwrite=True)
    with pytest.raises(FileExistsError, match="already finished; nothing to resume"):
        check_run_dir(run, resume=True, overwrite=False)


def test_resume_needs_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint to resume from"):
        check_run_dir(tmp_path / "RUN", resume=True, overwrite=False)


def test_a_fresh_run_gets_an_empty_staging_directory_and_a_failed_one_leaves_none(tmp_path):
    run = tmp_path / "RUN"
    stale = partial_dir(run)
    stale.mkdir()
    (stale / "model.npz").write_bytes(b"half")  # a run that died before its first checkpoint
    partial = prepare_run_dir(run, resume=False)
    assert partial == stale and list(partial.iterdir()) == []
    assert discard_unless_checkpointed(partial) and not partial.exists()


def test_a_checkpointed_staging_directory_is_kept(tmp_path):
    partial = partial_dir(tmp_path / "RUN")
    partial.mkdir()
    (partial / CHECKPOINT_NPZ).write_bytes(b"x")
    assert not discard_unless_checkpointed(partial) and partial.is_dir()


def test_the_finished_run_replaces_the_old_one_and_drops_its_checkpoint(tmp_path):
    run, partial = tmp_path / "RUN", partial_dir(tmp_path / "RUN")
    run.mkdir()
    (run / "model.npz").write_bytes(b"old")
    partial.mkdir()
    (partial / "model.npz").write_bytes(b"new")
    (partial / CHECKPOINT_NPZ).write_bytes(b"ckpt")
    assert finish_run_dir(partial, run) == []
    assert (run / "model.npz").read_bytes() == b"new" and not (run / CHECKPOINT_NPZ).exists()
    assert not partial.exists() and sorted(os.listdir(tmp_path)) == ["RUN"]


def test_model_json_says_how_inputs_are_scaled_and_what_ran(tmp_path):
    data = tmp_path / "DATA"
    data.mkdir()
    final = {"examples": 10, "accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "per_class_f1": [0.5]}
    meta = model_meta(CONFIG, FeatureKind.IMAGE, str(data), final, "4.3.0")
    assert meta["feature_kind"] == "image" and meta["input_scaling"] == "image_bytes / 255"
    assert meta["local_learning_rate"] == pytest.approx(0.012)  # average mode, W = 4: linear scaling
    assert meta["data"]["path"] == str(data) and meta["metrics"] == {k: final[k] for k in list(final)[:5]}
    features = model_meta(CONFIG, FeatureKind.FEATURES, "s3://bucket/DATA", None, None)
    assert features["feature_kind"] == "features" and features["input_scaling"] == "none"
    assert features["data"]["path"] == "s3://bucket/DATA" and features["metrics"] is None


def test_the_outputs_of_a_run_without_a_test_set_hold_no_evaluation(tmp_path):
    params = init_params([784, 8, 10], 0)
    meta = model_meta(CONFIG, FeatureKind.IMAGE, str(tmp_path), None, None)
    write_outputs(tmp_path, params, meta, {"epochs": [], "rounds": {}, "final": None}, None, None)
    assert sorted(os.listdir(tmp_path)) == sorted(RUN_FILES[:3])
    assert json.loads((tmp_path / "model.json").read_text())["layer_sizes"] == [784, 8, 10]
    with np.load(tmp_path / "model.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["W0", "W1", "b0", "b1"]
