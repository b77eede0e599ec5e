"""The predict job: the input's columns plus prediction and probability, equal to the NumPy forward pass."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest

from dist_mnist import cli
from dist_mnist.artifacts import save_model
from dist_mnist.nn.model import init_params, predict

from .conftest import REPO

pytestmark = pytest.mark.spark


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


def test_predictions_keep_the_columns_and_equal_the_forward_pass(spark, datasets, arrays, model_dir, tmp_path,
                                                                 monkeypatch, capsys):
    run, params = model_dir
    out = tmp_path / "PRED"
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", datasets[2] / "test", "--out", out)
    assert code == 0, captured.err
    table = pq.read_table(out)
    assert table.column_names == ["label", "image", "prediction", "probability"]
    images = np.frombuffer(b"".join(table.column("image").to_pylist()), np.uint8).reshape(-1, 784)
    np.testing.assert_array_equal(table.column("prediction").to_numpy(), predict(params, images).astype(np.float64))
    probs = np.array(table.column("probability").to_pylist())
    assert probs.shape == (len(arrays["test"][1]), 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert not list(tmp_path.glob("PRED.tmp-*"))


def test_an_existing_output_is_refused_and_left_alone(spark, datasets, model_dir, tmp_path, monkeypatch, capsys):
    run, _ = model_dir
    out = tmp_path / "PRED"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", datasets[2] / "test", "--out", out)
    assert code == 2 and captured.err.strip().endswith("PRED: already exists (pass --overwrite to replace it)")
    assert (out / "keep.txt").read_text() == "mine"
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", datasets[2] / "test", "--out", out,
                              "--overwrite")
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


def test_a_features_column_of_any_width_is_scored_as_given(spark, tmp_path, monkeypatch, capsys):
    import pyarrow as pa

    from dist_mnist.nn.model import logits_of

    run = tmp_path / "RUN20"
    run.mkdir()
    params = init_params([20, 8, 3], 2)
    save_model(run, params, {"layer_sizes": [20, 8, 3], "feature_kind": "float"})
    X = np.random.default_rng(0).normal(size=(50, 20)).astype(np.float32)
    data = tmp_path / "DATA20"
    data.mkdir()
    pq.write_table(pa.table({"id": pa.array(range(50)), "features": pa.array(list(X), pa.list_(pa.float32()))}),
                   data / "part-00000.parquet")
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", data, "--out", tmp_path / "PRED20")
    assert code == 0, captured.err
    table = pq.read_table(tmp_path / "PRED20").sort_by("id")
    np.testing.assert_array_equal(table.column("prediction").to_numpy(), logits_of(params, X).argmax(axis=1))
    # a row of the wrong width is one line naming the column and the width the model takes
    pq.write_table(pa.table({"id": pa.array([50]), "features": pa.array([[0.0] * 19], pa.list_(pa.float32()))}),
                   data / "part-00001.parquet")
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", data, "--out", tmp_path / "PRED21")
    assert code == 2 and "has 19 values, expected 20" in captured.err.strip().splitlines()[-1]


# --- errors name the file and the row counted from its start (issue 18) ---

def test_located_rows_names_the_file_and_its_row_when_a_batch_spans_files():
    import pyarrow as pa

    from dist_mnist.spark.predict import FILE, ROW, located_rows

    X = np.zeros((6, 3), np.float32)
    X[4, 2] = np.nan
    batch = pa.RecordBatch.from_arrays(
        [pa.array(list(X), pa.list_(pa.float32())), pa.array(["file:/d/a.parquet"] * 3 + ["file:/d/b%20c.parquet"] * 3),
         pa.array([7, 8, 9, 0, 1, 2], pa.int64())], names=["features", FILE, ROW])
    with pytest.raises(ValueError) as info:
        located_rows(batch, "features", 3)
    assert str(info.value) == "/d/b c.parquet: column 'features' has a NaN at row 1, index 2; features must be finite numbers"
    images = pa.RecordBatch.from_arrays([pa.array([bytes(4), bytes(4), bytes(3)]), pa.array(["file:/d/a.parquet"] * 3),
                                         pa.array([40, 41, 42], pa.int64())], names=["image", FILE, ROW])
    with pytest.raises(ValueError, match=r"^/d/a.parquet: image at row 42 has 3 bytes, expected 4$"):
        located_rows(images, "image", 4)


def test_non_finite_features_and_a_short_image_are_one_line_naming_file_and_row(spark, tmp_path, monkeypatch, capsys):
    import pyarrow as pa

    run = tmp_path / "RUN20"
    run.mkdir()
    save_model(run, init_params([20, 8, 3], 2), {"layer_sizes": [20, 8, 3], "feature_kind": "float"})
    X = np.random.default_rng(1).normal(size=(120, 20)).astype(np.float32)
    X[100, 5] = np.nan  # the second file's row 40
    data = tmp_path / "DATA"
    data.mkdir()
    for i, rows in enumerate((slice(0, 60), slice(60, 120))):
        pq.write_table(pa.table({"features": pa.array(list(X[rows]), pa.list_(pa.float32()))}),
                       data / f"part-0000{i}.parquet", row_group_size=16)
    code, captured = _predict(monkeypatch, capsys, "--model", run, "--data", data, "--out", tmp_path / "PRED")
    assert code == 2 and captured.err.strip().splitlines()[-1] == (
        f"dist-mnist predict: error: {data / 'part-00001.parquet'}: column 'features' has a NaN at row 40, index 5; "
        f"features must be finite numbers")
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
        f"dist-mnist predict: error: {pixels / 'part-00001.parquet'}: image at row 33 has 783 bytes, expected 784")
