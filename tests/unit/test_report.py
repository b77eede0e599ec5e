"""`dist-mnist report`: figures and a page from a run directory built here (no Spark)."""

from __future__ import annotations

import re
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from dist_mnist.cli import commands as cli
from dist_mnist.data.parquet import to_table
from dist_mnist.files.atomic import atomic_write_json
from dist_mnist.files.model import save_model
from dist_mnist.metrics import confusion_counts
from dist_mnist.nn.model import init_params, predict
from dist_mnist.outputs.report import misclassified, round_phases, write_report

from ..support.cli import one_line_error
from ..support.fakes import learnable

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("training.png", "confusion.png", "per_class.png", "misclassified.png", "rounds.png")


@pytest.fixture
def run_dir(tmp_path):
    """A finished run's files, as train writes them, over a 200-row test split."""
    images, labels = learnable(200, seed=1)
    (tmp_path / "DATA" / "test").mkdir(parents=True)
    pq.write_table(to_table(images, labels), tmp_path / "DATA" / "test" / "part-00000.parquet")
    run = tmp_path / "RUN"
    run.mkdir()
    params = init_params([784, 16, 10], seed=0)
    save_model(
        run,
        params,
        {
            "layer_sizes": [784, 16, 10],
            "config": {"mode": "sync", "epochs": 2},
            "data": {"path": str(tmp_path / "DATA")},
        },
    )
    epochs = [
        {"epoch": 1, "train_loss": 1.2, "test_accuracy": 0.7, "elapsed_seconds": 3.0},
        {"epoch": 2, "train_loss": 0.8, "test_accuracy": 0.8, "elapsed_seconds": 5.5},
    ]
    # a part left out (straggler) and one another version recorded (transport): read defensively
    rounds = {
        "executor": {"total_seconds": 2.0, "mean_ms": 500.0},
        "overhead": {"total_seconds": 0.2, "mean_ms": 50.0},
        "update": {"total_seconds": 0.04, "mean_ms": 10.0},
        "transport": {"total_seconds": 0.1, "mean_ms": 25.0},
        "rounds": 4,
        "overhead_ms": {"median": 1.0},
    }
    atomic_write_json(run / "metrics.json", {"epochs": epochs, "rounds": rounds})
    counts = confusion_counts(labels, predict(params, images))
    atomic_write_json(run / "evaluation.json", {"confusion": counts.tolist()})
    return run


def test_the_report_knows_every_part_a_round_records():
    from dist_mnist.driver.timings import PARTS, RoundTimings

    recorded = RoundTimings().summary()
    assert [k for k in recorded if isinstance(recorded[k], dict) and "mean_ms" in recorded[k]] == list(PARTS)
    assert round_phases(recorded) == dict.fromkeys(PARTS, 0.0)


def test_report_writes_pngs_and_a_page_that_shows_them(run_dir):
    page = write_report(run_dir, log=lambda line: None)
    assert page == run_dir / "report" / "index.html"
    for name in FIGURES:
        assert (run_dir / "report" / name).read_bytes()[:8] == PNG_MAGIC, name
    text = page.read_text()
    assert sorted(re.findall(r'<img src="([^"]+)"', text)) == sorted(FIGURES)
    assert "transport" in text and "straggler" not in text  # the phases recorded, no others


def test_round_phases_takes_what_was_recorded_known_phases_first():
    rounds = {
        "transport": {"mean_ms": 3},
        "update": {"mean_ms": 1.5},
        "overhead": {"mean_ms": 2},
        "rounds": 7,
        "overhead_ms": {"median": 9.0},
        "executor": {"total_seconds": 1.0},
    }
    assert round_phases(rounds) == {"overhead": 2.0, "update": 1.5, "transport": 3.0}
    assert round_phases({}) == {}


def test_misclassified_keeps_the_first_wrong_rows():
    images = np.arange(5)[:, None] * np.ones((5, 784), np.uint8)
    labels, predicted = np.array([1, 2, 3, 4, 5]), np.array([1, 0, 3, 0, 0])
    wrong_images, actual, guessed = misclassified(predicted, images, labels, limit=2)
    assert list(actual) == [2, 4] and list(guessed) == [0, 0]
    assert list(wrong_images[:, 0]) == [1, 3]


def test_report_cli_names_missing_test_data(run_dir, tmp_path, capsys):
    assert cli.main(["report", str(run_dir), "--data", str(tmp_path / "nope")]) == 2
    assert "pass --data DATA" in one_line_error(capsys, "report")


def test_report_without_matplotlib_is_one_line(run_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    assert cli.main(["report", str(run_dir)]) == 1  # a broken environment: a failure
    assert "pip install 'dist-mnist[report]'" in one_line_error(capsys, "report")
    assert not (run_dir / "report").exists()
