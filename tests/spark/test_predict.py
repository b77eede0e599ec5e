"""The predict job: the input's columns plus transform's prediction, probability and rawPrediction,
equal to the NumPy forward pass."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

from dist_mnist.cli import commands as cli
from dist_mnist.data.parquet import to_table
from dist_mnist.files.model import save_model
from dist_mnist.nn.model import init_params, logits_of, predict, softmax, to_inputs

from ..support import REPO
from ..support.cli import error_lines


@pytest.fixture
def model_dir(tmp_path):
    run = tmp_path / "RUN"
    run.mkdir()
    params = init_params([784, 16, 10], 5)
    save_model(run, params, {"layer_sizes": [784, 16, 10]})
    return run, params


def _predict(monkeypatch, capsys, *args):
    monkeypatch.setenv("SPARK_CONF_DIR", str(REPO / "conf"))
    code = cli.main(["predict", "--master", "local[2]", *map(str, args)])
    return code, capsys.readouterr()


def test_predictions_keep_the_columns_and_equal_the_forward_pass(
    spark, datasets, arrays, model_dir, tmp_path, monkeypatch, capsys
):
    run, params = model_dir
    out = tmp_path / "PRED"
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", datasets[2] / "test", "--out", out)
    assert code == 0, captured.err
    table = pq.read_table(out)
    assert table.column_names == ["label", "image", "prediction", "probability", "rawPrediction"]
    assert [str(table.schema.field(c).type) for c in table.column_names[2:]] == [
        "double",
        "list<element: float not null>",
        "list<element: float not null>",
    ]
    images = np.frombuffer(b"".join(table.column("image").to_pylist()), np.uint8).reshape(-1, 784)
    np.testing.assert_array_equal(table.column("prediction").to_numpy(), predict(params, images).astype(np.float64))
    probs = np.array(table.column("probability").to_pylist())
    assert probs.shape == (len(arrays["test"][1]), 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    logits = logits_of(params, to_inputs(images))  # rawPrediction: the logits, whose softmax is probability
    np.testing.assert_allclose(np.array(table.column("rawPrediction").to_pylist()), logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs, softmax(logits), rtol=1e-5, atol=1e-7)
    assert not list(tmp_path.glob("PRED.tmp-*"))


def test_an_existing_output_is_refused_and_left_alone(spark, datasets, model_dir, tmp_path, monkeypatch, capsys):
    run, _ = model_dir
    out = tmp_path / "PRED"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", datasets[2] / "test", "--out", out)
    assert code == 2 and captured.err.strip().endswith("PRED: already exists (pass --overwrite to replace it)")
    assert (out / "keep.txt").read_text() == "mine"
    code, captured = _predict(
        monkeypatch, capsys, "--model", run, "--data", datasets[2] / "test", "--out", out, "--overwrite"
    )
    assert code == 0, captured.err
    assert not (out / "keep.txt").exists() and pq.read_table(out).num_rows == 256


def test_data_without_an_image_column_is_one_line(spark, model_dir, tmp_path, monkeypatch, capsys):
    run, _ = model_dir
    data = tmp_path / "DATA"
    data.mkdir()
    import pyarrow as pa

    pq.write_table(pa.table({"label": [1, 2]}), data / "part-0.parquet")
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", data, "--out", tmp_path / "PRED")
    assert code == 2 and "needs a binary column 'image'" in captured.err and "Traceback" not in captured.err
    assert not (tmp_path / "PRED").exists()


def _features_model_and_data(tmp_path, n: int, seed: int):
    """(RUN20: a 20-8-3 model of `features`, its params, X (n, 20), DATA20: one file of `id`
    and `features` array<float> holding X)."""
    import pyarrow as pa

    run = tmp_path / "RUN20"
    run.mkdir()
    params = init_params([20, 8, 3], 2)
    save_model(run, params, {"layer_sizes": [20, 8, 3], "feature_kind": "features"})
    X = np.random.default_rng(seed).normal(size=(n, 20)).astype(np.float32)
    data = tmp_path / "DATA20"
    data.mkdir()
    pq.write_table(
        pa.table({"id": pa.array(range(n)), "features": pa.array(list(X), pa.list_(pa.float32()))}),
        data / "part-00000.parquet",
    )
    return run, params, X, data


def test_a_features_column_of_any_width_is_scored_as_given(spark, tmp_path, monkeypatch, capsys):
    import pyarrow as pa

    run, params, X, data = _features_model_and_data(tmp_path, 50, seed=0)
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", data, "--out", tmp_path / "PRED20")
    assert code == 0, captured.err
    table = pq.read_table(tmp_path / "PRED20").sort_by("id")
    np.testing.assert_array_equal(table.column("prediction").to_numpy(), logits_of(params, X).argmax(axis=1))
    # a row of the wrong width is one line naming the column and the width the model takes
    pq.write_table(
        pa.table({"id": pa.array([50]), "features": pa.array([[0.0] * 19], pa.list_(pa.float32()))}),
        data / "part-00001.parquet",
    )
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", data, "--out", tmp_path / "PRED21")
    assert code == 2 and captured.err.strip().splitlines()[-1].endswith(
        f"{data / 'part-00001.parquet'}: 'features' at row 0 has 19 values, expected 20"
    )


def test_predict_and_transform_score_alike_and_an_output_name_in_the_input_is_refused(
    spark, tmp_path, monkeypatch, capsys
):
    """One scoring path: predict's columns are transform's, by name, with the same values
    (transform gives Vectors where predict writes arrays)."""
    import pyarrow as pa

    from dist_mnist.ml import MLPClassificationModel

    run, params, _, data = _features_model_and_data(tmp_path, 40, seed=5)
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", data, "--out", tmp_path / "PRED")
    assert code == 0, captured.err
    predicted = pq.read_table(tmp_path / "PRED").sort_by("id")
    model = MLPClassificationModel(params, {"layer_sizes": [20, 8, 3], "feature_kind": "features"})
    transformed = sorted(model.transform(spark.read.parquet(str(data))).collect(), key=lambda r: r["id"])
    added = [c for c in predicted.column_names if c not in ("id", "features")]
    assert added == [c for c in transformed[0].asDict() if c not in ("id", "features")]
    for name in added:
        ours = np.array(predicted.column(name).to_pylist())
        theirs = np.array([r[name] if name == "prediction" else r[name].toArray() for r in transformed])
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7, err_msg=name)  # float32 GEMMs of other batches

    clash = tmp_path / "CLASH"
    clash.mkdir()
    pq.write_table(
        pa.table({"features": pa.array([[0.0] * 20], pa.list_(pa.float32())), "rawPrediction": pa.array([1.0])}),
        clash / "part-00000.parquet",
    )
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", clash, "--out", tmp_path / "PRED2")
    assert code == 2 and captured.err.strip().splitlines()[-1].endswith(
        "already has column(s) ['rawPrediction']; rename them before scoring"
    )
    assert not (tmp_path / "PRED2").exists()


def test_a_bad_image_is_one_line_naming_its_file_and_its_row_in_the_file(model_dir, tmp_path):
    """A real `dist-mnist predict`: the whole stderr is the error line (and Spark's start-up
    warnings), with the row counted from the file's start although Arrow batches (10,000
    rows) and Spark's partitions start elsewhere; nothing is written."""
    import pyarrow as pa

    run, _ = model_dir
    data = tmp_path / "DATA"
    data.mkdir()
    rng = np.random.default_rng(0)
    pq.write_table(to_table(rng.integers(0, 256, (300, 784), np.uint8), np.zeros(300)), data / "part-00000.parquet")
    table = to_table(rng.integers(0, 256, (12000, 784), np.uint8), np.zeros(12000))
    images = table.column("image").to_pylist()
    images[10500] = images[10500][:783]
    pq.write_table(table.set_column(1, "image", pa.array(images, pa.binary())), data / "part-00001.parquet")
    env = {k: v for k, v in os.environ.items() if k != "DIST_MNIST_SPARK_LOG_LEVEL"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dist_mnist.cli",
            "predict",
            "--master",
            "local[2]",
            "--model",
            str(run),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "PRED"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert error_lines(done.stderr) == [
        f"dist-mnist predict: error: {data / 'part-00001.parquet'}: image at row 10500 has 783 bytes, expected 784"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["DATA", "RUN"]  # no output, no temporary directory


# --- a NaN feature and a short image name the file and the row counted from its start (issue 18) ---


def test_non_finite_features_and_a_short_image_are_one_line_naming_file_and_row(spark, tmp_path, monkeypatch, capsys):
    import pyarrow as pa

    run = tmp_path / "RUN20"
    run.mkdir()
    save_model(run, init_params([20, 8, 3], 2), {"layer_sizes": [20, 8, 3], "feature_kind": "features"})
    X = np.random.default_rng(1).normal(size=(120, 20)).astype(np.float32)
    X[100, 5] = np.nan  # the second file's row 40
    data = tmp_path / "DATA"
    data.mkdir()
    for i, rows in enumerate((slice(0, 60), slice(60, 120))):
        pq.write_table(
            pa.table({"features": pa.array(list(X[rows]), pa.list_(pa.float32()))}),
            data / f"part-0000{i}.parquet",
            row_group_size=16,
        )
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", data, "--out", tmp_path / "PRED")
    assert code == 2 and captured.err.strip().splitlines()[-1] == (
        f"dist-mnist predict: error: {data / 'part-00001.parquet'}: column 'features' has a NaN at row 40, index 5; "
        f"features must be finite numbers"
    )
    assert not (tmp_path / "PRED").exists()

    run = tmp_path / "RUN784"
    run.mkdir()
    save_model(run, init_params([784, 16, 10], 5), {"layer_sizes": [784, 16, 10]})
    images = [bytes(784)] * 50
    images[33] = bytes(783)
    pixels = tmp_path / "PIXELS"
    pixels.mkdir()
    pq.write_table(pa.table({"image": pa.array([bytes(784)] * 50)}), pixels / "part-00000.parquet")
    pq.write_table(pa.table({"image": pa.array(images)}), pixels / "part-00001.parquet", row_group_size=10)
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", pixels, "--out", tmp_path / "PRED2")
    assert code == 2 and captured.err.strip().splitlines()[-1] == (
        f"dist-mnist predict: error: {pixels / 'part-00001.parquet'}: image at row 33 has 783 bytes, expected 784"
    )
