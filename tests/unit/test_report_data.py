"""`report` on a run trained in another directory: model.json records DATA resolved, and when
the data is gone the one line says where the path came from and to pass --data (no Spark)."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from dist_mnist.cli import commands as cli
from dist_mnist.config import TrainConfig
from dist_mnist.data.parquet import to_table
from dist_mnist.driver.runs import model_meta, write_outputs
from dist_mnist.metrics import confusion_counts, scores
from dist_mnist.nn.model import init_params, predict

from ..support.cli import one_line_error
from ..support.fakes import learnable

pytest.importorskip("matplotlib")


@pytest.fixture
def trained_elsewhere(tmp_path, monkeypatch):
    """RUN written as train writes it, from the directory `where` with `--data DATA` (relative)."""
    where = tmp_path / "where"
    images, labels = learnable(100, seed=1)
    (where / "DATA" / "test").mkdir(parents=True)
    pq.write_table(to_table(images, labels), where / "DATA" / "test" / "part-00000.parquet")
    config = TrainConfig(layer_sizes=(784, 16, 10), epochs=1)
    params = init_params(list(config.layer_sizes), 0)
    counts = confusion_counts(labels, predict(params, images))
    (where / "RUN").mkdir()
    monkeypatch.chdir(where)
    final = scores(counts)
    meta = model_meta(config, "image", "DATA", final, None)
    write_outputs(where / "RUN", params, meta, {"epochs": [], "rounds": {"rounds": 0}, "final": None}, final, counts)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return where


def test_model_json_records_the_data_path_resolved_and_report_finds_it(trained_elsewhere, capsys):
    run = trained_elsewhere / "RUN"
    assert json.loads((run / "model.json").read_text())["data"]["path"] == str(trained_elsewhere / "DATA")
    assert cli.main(["report", str(run)]) == 0, capsys.readouterr().err
    assert (run / "report" / "misclassified.png").exists()


def test_recorded_data_that_is_gone_is_one_line_saying_where_it_came_from(trained_elsewhere, capsys):
    run = trained_elsewhere / "RUN"
    (trained_elsewhere / "DATA").rename(trained_elsewhere / "MOVED")
    assert cli.main(["report", str(run)]) == 2
    assert one_line_error(capsys, "report").endswith(
        f"{trained_elsewhere / 'DATA' / 'test'}: no Parquet files (DATA from {run / 'model.json'}'s data.path, "
        "where the run was trained; pass --data DATA, the directory ingest wrote)"
    )
    assert cli.main(["report", str(run), "--data", str(trained_elsewhere / "MOVED")]) == 0
