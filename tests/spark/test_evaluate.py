"""Distributed evaluation equals the same metrics computed locally."""

from __future__ import annotations

import json

import pytest

from dist_mnist.cli import commands as cli
from dist_mnist.config import TrainConfig
from dist_mnist.files.model import save_model
from dist_mnist.metrics import confusion_counts, scores, stats_text
from dist_mnist.nn.model import predict
from dist_mnist.reference import train_reference
from dist_mnist.spark.evaluate import evaluate_model

from ..support import REPO


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, arrays):
    """A model trained by the reference for one epoch: good, not perfect."""
    config = TrainConfig(layer_sizes=(784, 16, 10), batch_size=64, epochs=1, mode="sync")
    params, _ = train_reference(config, *arrays["train"], max_steps=6)
    run = tmp_path_factory.mktemp("model")
    save_model(run, params, {"layer_sizes": list(config.layer_sizes)})
    return run, params


@pytest.mark.parametrize("P", [1, 4])
def test_report_equals_local_metrics(spark, datasets, arrays, model_dir, P):
    run, params = model_dir
    images, labels = arrays["test"]
    counts = confusion_counts(labels, predict(params, images))
    assert 0.2 < scores(counts)["accuracy"] < 1.0  # a non-trivial confusion matrix

    text = evaluate_model(spark, str(run), str(datasets[P] / "test"))
    assert text == stats_text(counts)
    saved = json.loads((run / "evaluation-test.json").read_text())
    assert saved["confusion"] == counts.tolist()
    expected = json.loads(json.dumps(scores(counts)))  # NaN-free here; same JSON round trip
    assert {k: saved[k] for k in expected} == expected


def test_json_path_and_cli(spark, datasets, model_dir, tmp_path, capsys, monkeypatch):
    run, _ = model_dir
    monkeypatch.setenv("SPARK_CONF_DIR", str(REPO / "conf"))
    out = tmp_path / "scores.json"
    code = cli.main(
        [
            "evaluate",
            "--model",
            str(run),
            "--data",
            str(datasets[2] / "test"),
            "--json",
            str(out),
            "--master",
            "local[2]",
        ]
    )
    assert code == 0
    assert "Confusion Matrix" in capsys.readouterr().out
    assert json.loads(out.read_text())["examples"] == 256


def test_missing_model_is_a_user_error(spark, datasets, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPARK_CONF_DIR", str(REPO / "conf"))
    code = cli.main(
        ["evaluate", "--model", str(tmp_path / "nope"), "--data", str(datasets[2] / "test"), "--master", "local[2]"]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and str(tmp_path / "nope") in err


def test_evaluation_leaves_no_shard_files_behind(spark, datasets, model_dir):
    import glob
    import os

    from pyspark import SparkFiles

    from dist_mnist.data.splits import describe_split
    from dist_mnist.spark.evaluate import evaluate_split

    def shard_files(_=None):
        return set(glob.glob(os.path.join(SparkFiles.getRootDirectory(), "dist-mnist-shard-*")))

    before = shard_files()
    evaluate_split(spark, model_dir[1], describe_split(str(datasets[2] / "test")), workers=2)
    assert shard_files() <= before
    assert all(files <= before for files in spark.sparkContext.parallelize(range(4), 4).map(shard_files).collect())
