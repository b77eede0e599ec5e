"""`dist-mnist report` on a run the Spark trainer really wrote (synthetic data, 2 epochs)."""

from __future__ import annotations

import json
import re

from dist_mnist.cli import commands as cli
from dist_mnist.config import TrainConfig
from dist_mnist.driver import train

CONFIG = TrainConfig(layer_sizes=(784, 32, 10), batch_size=64, epochs=2, mode="average", averaging_frequency=4)


def test_report_of_a_real_run(spark, datasets, tmp_path, quiet, capsys):
    run = tmp_path / "RUN"
    train(spark, CONFIG, str(datasets[2]), str(run), log=quiet)
    assert cli.main(["report", str(run)]) == 0  # the test data found through model.json
    assert "report written to" in capsys.readouterr().out
    page = (run / "report" / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert {"training.png", "confusion.png", "per_class.png", "misclassified.png", "rounds.png"} <= set(images)
    for name in images:
        assert (run / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    accuracy = json.loads((run / "evaluation.json").read_text())["accuracy"]
    assert f"{100 * accuracy:.2f}%" in page
