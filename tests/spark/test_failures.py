"""Bad data and divergence: exit 2 with one line naming the file, dataset or round."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dist_mnist import driver
from dist_mnist.cli import commands as cli
from dist_mnist.config import TrainConfig
from dist_mnist.driver.checkpoint import read_arrays

from ..support import REPO

FAST = ["--set", "mode=sync", "--set", "layer_sizes=[784, 16, 10]", "--set", "batch_size=64", "--set", "max_rounds=2"]


@pytest.fixture
def run_cli(monkeypatch, capsys, tmp_path):
    """cli.main(train ...) on the shared session; returns (exit code, the stderr line)."""
    monkeypatch.setenv("SPARK_CONF_DIR", str(REPO / "conf"))

    def run(data, *extra):
        code = cli.main(
            ["train", "--data", str(data), "--out", str(tmp_path / "RUN"), "--master", "local[2]", *FAST, *extra]
        )
        err = capsys.readouterr().err
        assert "Traceback" not in err, err
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert not (tmp_path / "RUN").exists()
        return code, lines[0]

    return run


def _replace(split_dir, table, part: int = 1):
    pq.write_table(table, split_dir / f"part-{part:05d}.parquet")


def _table(n, label=None, image=None):
    label = pa.array(np.arange(n) % 10, pa.int32()) if label is None else label
    image = pa.array([bytes(784)] * n, pa.binary()) if image is None else image
    return pa.table({"label": label, "image": image})


# Schema problems, caught on the driver from the Parquet schema: every part file is broken,
# since Spark reads the schema of one of them.
@pytest.mark.parametrize(
    "table, fragment",
    [
        (pa.table({"image": pa.array([bytes(784)] * 4)}), "missing column(s) ['label']"),
        (pa.table({"label": pa.array([1, 2, 3, 4], pa.int32())}), "missing column(s) ['image']"),
        (_table(4, label=pa.array(["1", "2", "3", "4"])), "column 'label' has type string"),
        (_table(4, label=pa.array([1.0, 2.0, 3.0, 4.0])), "column 'label' has type double"),
        (_table(4, image=pa.array(["x" * 784] * 4)), "column 'image' has type string"),
        (_table(4, image=pa.array([1, 2, 3, 4], pa.int32())), "column 'image' has type int"),
    ],
    ids=["no-label", "no-image", "label-string", "label-double", "image-string", "image-int"],
)
def test_schema_errors(bad_data, run_cli, table, fragment):
    for part in (0, 1):
        _replace(bad_data / "train", table, part)
    code, line = run_cli(bad_data)
    assert code == 2 and fragment in line and str(bad_data / "train") in line


# Content problems, caught on the executor that reads the file: only part-00001 is broken.
@pytest.mark.parametrize(
    "table, fragment",
    [
        (_table(3, image=pa.array([bytes(784), bytes(783), bytes(784)])), "image at row 1 has 783 bytes, expected 784"),
        (_table(3, image=pa.array([bytes(784)] * 2 + [bytes(785)])), "image at row 2 has 785 bytes"),
        (_table(3, label=pa.array([1, None, 3], pa.int32())), "column 'label' has 1 null values"),
        (_table(3, image=pa.array([bytes(784), None, bytes(784)])), "column 'image' has 1 null values"),
        (_table(3, label=pa.array([1, 10, 3], pa.int32())), "label 10 at row 1 is outside"),
        (_table(3, label=pa.array([1, -1, 3], pa.int32())), "label -1 at row 1 is outside"),
    ],
    ids=["image-783", "image-785", "null-label", "null-image", "label-10", "label-negative"],
)
def test_content_errors_raised_on_executors(bad_data, run_cli, table, fragment):
    _replace(bad_data / "train", table)
    code, line = run_cli(bad_data)
    assert code == 2 and fragment in line and "part-00001.parquet" in line


def test_content_error_in_the_test_split(bad_data, run_cli):
    _replace(bad_data / "test", _table(3, label=pa.array([1, 11, 3], pa.int32())), part=0)
    code, line = run_cli(bad_data)
    assert code == 2 and "label 11" in line and "test/part-00000.parquet" in line


def test_empty_dataset(bad_data, run_cli):
    for part in (0, 1):
        _replace(bad_data / "train", _table(0), part)
    code, line = run_cli(bad_data)
    assert code == 2 and "the dataset is empty" in line and str(bad_data / "train") in line


def test_empty_directory(bad_data, run_cli):
    shutil.rmtree(bad_data / "test")
    (bad_data / "test").mkdir()
    code, line = run_cli(bad_data)
    assert code == 2 and str(bad_data / "test") in line


def test_missing_split(bad_data, run_cli):
    shutil.rmtree(bad_data / "test")
    code, line = run_cli(bad_data)
    assert code == 2 and str(bad_data / "test") in line


def test_directory_that_is_not_parquet(bad_data, run_cli):
    for part in (0, 1):
        (bad_data / "train" / f"part-{part:05d}.parquet").write_text("label,image\n1,abc\n")
    code, line = run_cli(bad_data)
    assert code == 2 and str(bad_data / "train") in line


def test_batch_larger_than_the_dataset(bad_data, run_cli):
    code, line = run_cli(bad_data, "--set", "batch_size=5000")
    assert code == 2 and "batch_size 5000" in line


def test_divergence_names_the_round_and_keeps_the_checkpoint(spark, datasets, tmp_path, quiet):
    # the fused softmax keeps the loss finite for a long time; 1e10 overflows the logits by round 3
    config = TrainConfig(
        layer_sizes=(784, 32, 10), batch_size=64, epochs=3, mode="sync", learning_rate=1e10, checkpoint_every_rounds=1
    )
    run = tmp_path / "RUN"
    with pytest.raises(driver.Diverged) as info:
        driver.train(spark, config, str(datasets[2]), str(run), log=quiet)
    msg = str(info.value)
    assert "round" in msg and "learning_rate" in msg
    _, _, _, meta = read_arrays(tmp_path / "RUN.partial")
    assert meta["global_round"] >= 1
    assert f"(round {meta['global_round'] + 1} overall)" in msg  # the last round before it was checkpointed
    assert not run.exists()


def test_divergence_through_the_cli(datasets, run_cli):
    code, line = run_cli(datasets[2], "--set", "learning_rate=1e10", "--set", "max_rounds=0")
    assert code == 1 and "loss became" in line and "round" in line  # a failed run, not a bad input


IMAGE_783 = _table(3, image=pa.array([bytes(784), bytes(783), bytes(784)]))


def test_data_error_on_an_executor_fails_no_task(spark, bad_data, run_cli):
    # the Spark-job transport: the task returns the error as a value, so no attempt fails and
    # none is retried; the driver raises it, and the CLI prints its one line
    _replace(bad_data / "train", IMAGE_783)
    sc = spark.sparkContext
    group = f"test-data-error-{id(bad_data)}"
    sc.setJobGroup(group, "a data error in the Spark-job transport")
    try:
        code, line = run_cli(bad_data, "--set", "transport=jobs", "--set", "workers=2")
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)
        sc.setLocalProperty("spark.job.description", None)
    assert code == 2 and "image at row 1 has 783 bytes" in line and "part-00001.parquet" in line
    tracker = sc.statusTracker()
    stages = [s for j in tracker.getJobIdsForGroup(group) for s in tracker.getJobInfo(j).stageIds]
    assert stages, "no job ran in the test's job group"
    for info in map(tracker.getStageInfo, stages):
        assert info.numFailedTasks == 0 and info.numCompletedTasks == info.numTasks, info


def test_data_error_through_the_barrier_transport(bad_data, run_cli):
    _replace(bad_data / "train", IMAGE_783)
    code, line = run_cli(bad_data, "--set", "transport=barrier", "--set", "workers=2")
    assert code == 2 and "image at row 1 has 783 bytes" in line and "part-00001.parquet" in line


def test_data_error_in_a_distributed_evaluation(spark, bad_data):
    from dist_mnist.data.splits import describe_split
    from dist_mnist.nn.model import init_params
    from dist_mnist.spark.evaluate import evaluate_split

    _replace(bad_data / "test", IMAGE_783)
    with pytest.raises(ValueError, match=r"part-00001\.parquet.*783 bytes|783 bytes.*part-00001\.parquet"):
        evaluate_split(spark, init_params([784, 16, 10], 1), describe_split(str(bad_data / "test")), 2)
