"""dist_mnist.ml: MLPClassifier / MLPClassificationModel in pyspark.ml Pipelines, every input
type against the NumPy forward pass, save/load round trips, and the column errors.

Most tests use a 20-feature, 3-class problem, so nothing is tied to 784 inputs or 10 classes.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest

from dist_mnist.config import TrainConfig
from dist_mnist.ml import MLPClassificationModel, MLPClassifier
from dist_mnist.nn.model import init_params, logits_of, softmax, to_inputs

N_IN, N_CLASSES = 20, 3
LAYERS = [N_IN, 16, N_CLASSES]


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features (n, 20) float64 around three well-separated class centres, and labels (n,)."""
    rng = np.random.default_rng([seed, 11])
    centres = np.random.default_rng(5).normal(0, 2.0, (N_CLASSES, N_IN))
    y = rng.integers(0, N_CLASSES, n)
    return centres[y] + rng.normal(0, 1.0, (n, N_IN)), y


@pytest.fixture(scope="module")
def frames(spark):
    """{"train", "test"}: DataFrames of columns f0..f19 (double), label (int) and a row id."""
    out = {}
    for split, (n, seed) in {"train": (600, 0), "test": (300, 1)}.items():
        X, y = blobs(n, seed)
        rows = [(i, int(label), *map(float, x)) for i, (x, label) in enumerate(zip(X, y))]
        out[split] = spark.createDataFrame(rows, ["id", "label", *[f"f{j}" for j in range(N_IN)]])
    return out


def assembler():
    from pyspark.ml.feature import VectorAssembler

    return VectorAssembler(inputCols=[f"f{j}" for j in range(N_IN)], outputCol="features")


@pytest.fixture(scope="module")
def pipeline_model(frames):
    """VectorAssembler -> MLPClassifier, fitted on the training frame."""
    from pyspark.ml import Pipeline

    clf = MLPClassifier(layers=LAYERS, maxIter=4, blockSize=32, stepSize=0.05, seed=7, workers=2)
    return Pipeline(stages=[assembler(), clf]).fit(frames["train"])


def random_model(seed: int = 3) -> MLPClassificationModel:
    params = init_params(LAYERS, seed)
    params["b0"] = np.random.default_rng(seed).normal(0, 0.1, 16).astype(np.float32)  # nonzero biases too
    return MLPClassificationModel(params, {"layer_sizes": LAYERS, "feature_kind": "features"})


def sorted_rows(df, *cols):
    return [tuple(r) for r in df.orderBy("id").select(*cols).collect()]


# --- Params ---


def test_defaults_are_the_tutorials():
    clf, d = MLPClassifier(), TrainConfig()
    assert (
        clf.getMaxIter(),
        clf.getBlockSize(),
        clf.getStepSize(),
        clf.getSeed(),
        clf.getMomentum(),
        clf.getL2(),
        clf.getMode(),
        clf.getWorkers(),
    ) == (15, 128, 0.006, 123, 0.9, 1e-4, "average", 0)
    assert (d.epochs, d.batch_size, d.learning_rate, d.seed, d.momentum, d.l2, d.mode, d.workers) == (
        15,
        128,
        0.006,
        123,
        0.9,
        1e-4,
        "average",
        0,
    )
    assert (
        clf.getFeaturesCol(),
        clf.getLabelCol(),
        clf.getPredictionCol(),
        clf.getProbabilityCol(),
        clf.getRawPredictionCol(),
    ) == ("features", "label", "prediction", "probability", "rawPrediction")
    assert not clf.isSet(clf.layers) and not clf.isDefined(clf.layers)
    assert not clf.isDefined(clf.validationIndicatorCol) and not clf.isDefined(clf.tempDir)
    # the signature documents the same defaults as the Params hold
    for name, p in inspect.signature(MLPClassifier.__init__).parameters.items():
        if p.default is not inspect.Parameter.empty and p.default is not None:
            assert clf.getOrDefault(name) == p.default, name


def test_params_set_and_validated():
    clf = MLPClassifier(layers=[4, 3, 2], maxIter=2, mode="sync").setStepSize(0.1).setBlockSize(16)
    assert clf.getLayers() == [4, 3, 2] and clf.getMaxIter() == 2 and clf.getMode() == "sync"
    from dist_mnist.ml.params import train_config

    c = train_config(clf)
    assert (c.layer_sizes, c.epochs, c.learning_rate, c.batch_size, c.mode) == ((4, 3, 2), 2, 0.1, 16, "sync")
    with pytest.raises(ValueError, match="param blockSize: batch_size must be"):
        MLPClassifier(blockSize=0)
    with pytest.raises(ValueError, match="param mode: mode must be one of"):
        MLPClassifier().setParams(mode="fast")
    with pytest.raises(TypeError):
        MLPClassifier(layers="big")


# --- a Pipeline, fitted, transformed, evaluated ---


def test_pipeline_fit_transform_evaluate(frames, pipeline_model):
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.linalg import VectorUDT
    from pyspark.sql.types import DoubleType

    out = pipeline_model.transform(frames["test"])
    schema = out.schema
    assert out.columns == [*frames["test"].columns, "features", "prediction", "probability", "rawPrediction"]
    assert isinstance(schema["prediction"].dataType, DoubleType)
    assert isinstance(schema["probability"].dataType, VectorUDT) and isinstance(
        schema["rawPrediction"].dataType, VectorUDT
    )
    accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(out)
    assert accuracy > 0.9  # three separated blobs; chance is 1/3
    row = out.first()
    assert len(row["probability"]) == N_CLASSES and abs(sum(row["probability"]) - 1) < 1e-6
    assert row["prediction"] == float(np.argmax(row["rawPrediction"].toArray()))
    model = pipeline_model.stages[-1]
    assert (model.numFeatures, model.numClasses, model.getLayers()) == (N_IN, N_CLASSES, LAYERS)
    assert model.getMaxIter() == 4 and model.getStepSize() == 0.05  # the estimator's Params, copied
    assert model.hasSummary and model.summary.totalIterations == 4
    losses = model.summary.objectiveHistory
    assert len(losses) == 4 and losses[-1] < losses[0]


def test_fit_with_validation_and_default_layers(spark, frames):
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    cols = [F.col(f"f{j}") for j in range(N_IN)]
    df = frames["train"].select(
        "label", array_to_vector(F.array(*cols)).alias("x"), (F.col("id") % 5 == 0).alias("val")
    )
    model = MLPClassifier(
        featuresCol="x", validationIndicatorCol="val", maxIter=2, blockSize=32, stepSize=0.05, workers=2
    ).fit(df)
    assert model.getLayers() == [N_IN, 1000, N_CLASSES]  # unset: [n_in, 1000, largest label + 1]
    assert len(model.summary.validationAccuracy) == 2 and model.summary.validationAccuracy[-1] > 0.9


def test_one_vector_predict_matches_transform(frames, pipeline_model):
    model = pipeline_model.stages[-1]
    row = pipeline_model.transform(frames["test"]).first()
    assert model.predict(row["features"]) == row["prediction"]
    np.testing.assert_allclose(
        model.predictProbability(row["features"]).toArray(), row["probability"].toArray(), rtol=1e-5, atol=1e-9
    )  # float32, other batch
    np.testing.assert_allclose(
        model.predictRaw(row["features"].toArray()).toArray(), row["rawPrediction"].toArray(), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="expected a vector of 20 features"):
        model.predict(np.zeros(5))


# --- every input type, against the NumPy forward pass ---


def _inputs(kind: str, X: np.ndarray):
    """(values for a DataFrame column, Spark type, the network's float32 inputs)."""
    from pyspark.ml.linalg import Vectors, VectorUDT
    from pyspark.sql.types import ArrayType, BinaryType, DoubleType, FloatType

    if kind == "binary":
        pixels = (np.abs(X) * 60).clip(0, 255).astype(np.uint8)
        return [bytes(p) for p in pixels], BinaryType(), to_inputs(pixels)
    if kind == "sparse":
        Xs = np.where(np.abs(X) > 1.0, X, 0.0)  # about a third nonzero
        return (
            [Vectors.sparse(N_IN, {j: float(v) for j, v in enumerate(x) if v}) for x in Xs],
            VectorUDT(),
            Xs.astype(np.float32),
        )
    if kind == "dense":
        return [Vectors.dense(x) for x in X], VectorUDT(), X.astype(np.float32)
    element = FloatType() if kind == "array<float>" else DoubleType()
    values = X.astype(np.float32) if kind == "array<float>" else X
    return [list(map(float, x)) for x in values], ArrayType(element), X.astype(np.float32)


@pytest.mark.parametrize("kind", ["dense", "sparse", "array<double>", "array<float>", "binary"])
def test_each_input_type_scores_as_numpy(spark, kind):
    from pyspark.sql.types import IntegerType, StructField, StructType

    X, _ = blobs(257, seed=2)
    values, spark_type, inputs = _inputs(kind, X)
    df = spark.createDataFrame(
        [(i, v) for i, v in enumerate(values)],
        StructType([StructField("id", IntegerType()), StructField("x", spark_type)]),
    )
    model = random_model().setFeaturesCol("x")
    rows = sorted_rows(model.transform(df.repartition(3)), "id", "prediction", "probability", "rawPrediction")
    logits = logits_of(model.parameters, inputs)
    assert [r[0] for r in rows] == list(range(len(X)))
    np.testing.assert_allclose(np.array([r[3].toArray() for r in rows]), logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.array([r[2].toArray() for r in rows]), softmax(logits), rtol=1e-5, atol=1e-7)
    assert [r[1] for r in rows] == list(np.argmax(logits, axis=1).astype(float))


def test_vectors_read_from_parquet(spark, frames, tmp_path):
    """A columnar scan with a vector column under the Arrow UDF (a Spark 4.3 pitfall)."""
    assembler().transform(frames["test"]).write.parquet(str(tmp_path / "t"))
    df = spark.read.parquet(str(tmp_path / "t"))
    model = random_model()
    rows = sorted_rows(model.transform(df), "id", "features", "prediction")
    X = np.array([r[1].toArray() for r in rows], np.float32)
    assert [r[2] for r in rows] == list(np.argmax(logits_of(model.parameters, X), axis=1).astype(float))


def test_empty_output_columns_are_not_produced(spark, frames):
    df = assembler().transform(frames["test"])
    model = random_model().setProbabilityCol("").setRawPredictionCol("")
    assert model.transform(df).columns == [*df.columns, "prediction"]
    assert model.setPredictionCol("").transform(df).columns == df.columns


# --- transform's column errors ---


def test_transform_errors_name_the_column(spark, frames):
    df = assembler().transform(frames["test"])
    model = random_model()
    with pytest.raises(ValueError, match=r"featuresCol 'pixels': no such column; the DataFrame has \['id', 'label'"):
        model.setFeaturesCol("pixels").transform(df)
    with pytest.raises(ValueError, match="featuresCol 'label' has type bigint; expected a vector"):
        model.setFeaturesCol("label").transform(df)
    with pytest.raises(ValueError, match=r"output column\(s\) \['label'\] already exist"):
        model.setFeaturesCol("features").setPredictionCol("label").transform(df)
    narrow = assembler().setInputCols([f"f{j}" for j in range(5)]).transform(frames["test"])
    with pytest.raises(ValueError, match=r"featuresCol 'features' holds vectors of 5 values .* expected 20"):
        random_model().transform(narrow)  # known on the driver from the vectors' metadata


def test_bad_vector_lengths_fail_on_the_executor_naming_the_column(spark):
    rows = [(i, [0.5] * (N_IN if i != 7 else N_IN - 1)) for i in range(12)]
    df = spark.createDataFrame(rows, "id int, feats array<double>")
    with pytest.raises(Exception, match=r"'feats' at row \d+ has 19 values, expected 20"):
        random_model().setFeaturesCol("feats").transform(df).collect()
    images = spark.createDataFrame([(0, bytes(N_IN)), (1, bytes(N_IN + 3))], "id int, img binary")
    with pytest.raises(Exception, match=r"featuresCol 'img': image at row \d+ has 23 bytes, expected 20"):
        random_model().setFeaturesCol("img").transform(images).collect()


# --- fit's column errors (raised by dist_mnist.ml.staging) ---


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", r"featuresCol 'nope': no such column"),
        ("type", r"featuresCol 'name' has type string"),
        ("mixed", r"featuresCol 'x' has a row of 19 values.*mixed length"),
        ("null_label", r"labelCol 'label' has a null label"),
        ("outside", r"labelCol 'label' has label 5.*outside the classes 0-2"),
    ],
)
def test_fit_column_errors(spark, case, message):
    rows = [(i % N_CLASSES if case != "outside" or i != 4 else 5, [0.1 * i] * N_IN, "a") for i in range(20)]
    if case == "mixed":
        rows[6] = (0, [0.0] * (N_IN - 1), "a")
    if case == "null_label":
        rows[3] = (None, rows[3][1], "a")
    df = spark.createDataFrame(rows, "label int, x array<double>, name string")
    features = {"missing": "nope", "type": "name"}.get(case, "x")
    with pytest.raises(ValueError, match=message):
        MLPClassifier(featuresCol=features, layers=LAYERS, maxIter=1).fit(df)


# --- persistence ---


def test_estimator_save_load(spark, tmp_path):
    clf = MLPClassifier(
        layers=LAYERS, maxIter=3, stepSize=0.02, mode="sync", featuresCol="x", validationIndicatorCol="val"
    )
    path = str(tmp_path / "clf")
    clf.save(path)
    loaded = MLPClassifier.load(path)
    assert loaded.uid == clf.uid
    assert {p.name: v for p, v in loaded.extractParamMap().items()} == {
        p.name: v for p, v in clf.extractParamMap().items()
    }
    assert loaded.isSet(loaded.layers) and not loaded.isSet(loaded.blockSize)  # set vs default kept apart
    meta = json.loads((tmp_path / "clf" / "metadata").glob("part-*").__next__().read_text())
    assert meta["class"] == "dist_mnist.ml.estimator.MLPClassifier" and meta["paramMap"]["layers"] == LAYERS
    assert "maxIter" in meta["defaultParamMap"] and not (tmp_path / "clf" / "data").exists()
    with pytest.raises(FileExistsError, match=r"clf: already exists \(use .write\(\).overwrite\(\)"):
        clf.save(path)
    clf.setMaxIter(9).write().overwrite().save(path)
    assert MLPClassifier.load(path).getMaxIter() == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]  # no temporary directory left


def test_model_save_load_identical(spark, frames, pipeline_model, tmp_path):
    df = assembler().transform(frames["test"])
    model = pipeline_model.stages[-1]
    path = str(tmp_path / "model")
    model.save(path)
    assert sorted(p.name for p in (tmp_path / "model" / "data").glob("[!.]*")) == [
        "model.json",
        "model.npz",
        "summary.json",
    ]
    with np.load(tmp_path / "model" / "data" / "model.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["W0", "W1", "b0", "b1"] and z["W0"].dtype == np.float32
    loaded = MLPClassificationModel.load(path)
    for k, v in model.parameters.items():
        np.testing.assert_array_equal(loaded.parameters[k], v)
    assert loaded.modelMeta == model.modelMeta and loaded.getLayers() == LAYERS
    cols = ("id", "prediction", "probability", "rawPrediction")
    assert sorted_rows(loaded.transform(df), *cols) == sorted_rows(model.transform(df), *cols)
    assert loaded.summary == model.summary and loaded.summary.objectiveHistory == model.summary.objectiveHistory


def test_model_without_summary_round_trips(spark, tmp_path):
    model = random_model()
    model.save(str(tmp_path / "m"))
    loaded = MLPClassificationModel.load(str(tmp_path / "m"))
    assert not loaded.hasSummary
    with pytest.raises(RuntimeError, match="No training summary"):
        _ = loaded.summary  # the property raises
    with pytest.raises(ValueError, match=r"holds a dist_mnist\.ml\.model\.MLPClassificationModel, not a"):
        MLPClassifier.load(str(tmp_path / "m"))
    with pytest.raises(FileNotFoundError, match="no saved MLPClassificationModel here"):
        MLPClassificationModel.load(str(tmp_path / "nothing"))


def test_refuses_a_pickled_npz(spark, tmp_path):
    random_model().save(str(tmp_path / "m"))
    npz = tmp_path / "m" / "data" / "model.npz"
    npz.unlink()
    (npz.parent / ".model.npz.crc").unlink()  # Hadoop's local checksum of the real file
    np.savez(npz, W0=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match=r"model\.npz: contains a pickled object array, refused"):
        MLPClassificationModel.load(str(tmp_path / "m"))


def _flip_a_byte(path) -> None:
    """Change a file in place, leaving Hadoop's .crc beside it as it was."""
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("tampered", ["data/model.npz", "data/model.json", "metadata"])
def test_a_tampered_save_is_one_line_naming_the_file(spark, tmp_path, tampered):
    random_model().save(str(tmp_path / "m"))
    target = next((tmp_path / "m" / "metadata").glob("part-*")) if tampered == "metadata" else tmp_path / "m" / tampered
    assert (target.parent / f".{target.name}.crc").exists()  # what Hadoop's local filesystem checks
    _flip_a_byte(target)
    with pytest.raises(ValueError) as info:
        MLPClassificationModel.load(str(tmp_path / "m"))
    assert str(info.value) == (
        f"{target}: checksum mismatch (the file was changed after it was saved; "
        f"Hadoop's .{target.name}.crc beside it no longer matches)"
    )


def test_a_tampered_pipeline_model_is_one_line(spark, frames, pipeline_model, tmp_path):
    from pyspark.ml import PipelineModel

    pipeline_model.save(str(tmp_path / "fitted"))
    npz = next((tmp_path / "fitted" / "stages").glob("1_*")) / "data" / "model.npz"
    _flip_a_byte(npz)
    with pytest.raises(ValueError, match=r"^[^\n]*model\.npz: checksum mismatch [^\n]*$"):
        PipelineModel.load(str(tmp_path / "fitted"))


def test_pipeline_and_pipeline_model_save_load(spark, frames, pipeline_model, tmp_path):
    from pyspark.ml import Pipeline, PipelineModel

    pipeline = Pipeline(stages=[assembler(), MLPClassifier(layers=LAYERS, maxIter=2)])
    pipeline.save(str(tmp_path / "pipeline"))
    stages = Pipeline.load(str(tmp_path / "pipeline")).getStages()
    assert isinstance(stages[1], MLPClassifier) and stages[1].getLayers() == LAYERS and stages[1].getMaxIter() == 2

    pipeline_model.save(str(tmp_path / "fitted"))
    loaded = PipelineModel.load(str(tmp_path / "fitted"))
    assert isinstance(loaded.stages[1], MLPClassificationModel)
    assert loaded.stages[1].summary == pipeline_model.stages[1].summary
    cols = ("id", "prediction", "probability", "rawPrediction")
    assert sorted_rows(loaded.transform(frames["test"]), *cols) == sorted_rows(
        pipeline_model.transform(frames["test"]), *cols
    )


# --- inputs that must not give silent garbage (issue 18) ---


def _invalid_frame(spark):
    """ids 0..7: rows 2 (NaN at index 4), 3 (null at index 7), 5 (null row) and 6 (-inf at index 0) are invalid."""
    X, _ = blobs(8, seed=4)
    values = [list(map(float, x)) for x in X]
    values[2][4], values[3][7], values[5], values[6][0] = float("nan"), None, None, float("-inf")
    return spark.createDataFrame(list(enumerate(values)), "id int, x array<double>"), X


def test_transform_refuses_non_finite_features_in_one_line_by_default(spark):
    from pyspark.sql import functions as F

    df, _ = _invalid_frame(spark)
    model = random_model().setFeaturesCol("x")
    assert model.getHandleInvalid() == "error"
    for ids, shown in (
        ([0, 2], "a NaN at index 4 in a row"),
        ([3], "a null at index 7 in a row"),
        ([5], "a null row"),
        ([6], "-inf at index 0 in a row"),
    ):
        with pytest.raises(Exception) as info:
            model.transform(df.where(F.col("id").isin(ids))).collect()
        text = str(info.value)
        assert text.splitlines()[0].startswith(
            f"[USER_RAISED_EXCEPTION] MLPClassificationModel.transform: featuresCol 'x' has {shown}; features must "
            f"be finite numbers (handleInvalid='skip' drops such rows, 'keep' scores them null)"
        ), text
        assert "Traceback" not in text and len(text.strip().splitlines()) == 1


def test_handle_invalid_skip_and_keep(spark):
    df, X = _invalid_frame(spark)
    valid = [0, 1, 4, 7]
    expected = np.argmax(logits_of(random_model().parameters, X.astype(np.float32)), axis=1).astype(float)
    skipped = sorted_rows(random_model().setFeaturesCol("x").setHandleInvalid("skip").transform(df), "id", "prediction")
    assert skipped == [(i, expected[i]) for i in valid]
    kept = sorted_rows(
        random_model().setFeaturesCol("x").setHandleInvalid("keep").transform(df),
        "id",
        "prediction",
        "probability",
        "rawPrediction",
    )
    assert [r[0] for r in kept] == list(range(8))
    for i, prediction, probability, raw in kept:
        if i in valid:
            assert prediction == expected[i] and len(probability) == N_CLASSES and len(raw) == N_CLASSES
        else:
            assert (prediction, probability, raw) == (None, None, None)


def test_handle_invalid_with_vectors_and_binary_rows(spark):
    from pyspark.ml.linalg import Vectors

    X, _ = blobs(4, seed=6)
    vectors = [(i, Vectors.dense(x)) for i, x in enumerate(X)]
    vectors[1] = (1, Vectors.dense([np.inf if j == 9 else v for j, v in enumerate(X[1])]))
    vdf = spark.createDataFrame(vectors, ["id", "features"])
    with pytest.raises(Exception, match=r"featuresCol 'features' has inf at index 9 in a row; features must be finite"):
        random_model().transform(vdf).collect()
    assert [r[0] for r in sorted_rows(random_model().setHandleInvalid("skip").transform(vdf), "id")] == [0, 2, 3]
    images = spark.createDataFrame([(0, bytes(N_IN)), (1, None), (2, bytes(range(N_IN)))], "id int, img binary")
    model = random_model().setFeaturesCol("img")
    with pytest.raises(Exception, match=r"featuresCol 'img' has a null row; features must be finite"):
        model.transform(images).collect()
    kept = sorted_rows(model.setHandleInvalid("keep").transform(images), "id", "prediction")
    assert [r[1] is None for r in kept] == [False, True, False]
    # a row of the wrong length is an error whatever handleInvalid says
    short = spark.createDataFrame([(0, [0.5] * (N_IN - 1))], "id int, x array<double>")
    with pytest.raises(Exception, match="has 19 values, expected 20"):
        random_model().setFeaturesCol("x").setHandleInvalid("skip").transform(short).collect()


def test_handle_invalid_is_a_param_of_both_checked_and_saved(spark, tmp_path):
    with pytest.raises(ValueError, match=r"handleInvalid must be one of \['error', 'skip', 'keep'\], got 'drop'"):
        MLPClassifier(handleInvalid="drop")
    with pytest.raises(ValueError, match="handleInvalid must be one of"):
        random_model().setHandleInvalid("nan")
    clf = MLPClassifier(layers=LAYERS, handleInvalid="keep")
    clf.save(str(tmp_path / "clf"))
    assert MLPClassifier.load(str(tmp_path / "clf")).getHandleInvalid() == "keep"
    model = random_model().setHandleInvalid("skip")
    model.save(str(tmp_path / "m"))
    assert MLPClassificationModel.load(str(tmp_path / "m")).getHandleInvalid() == "skip"


def test_one_vector_with_a_non_finite_value_is_refused():
    model = random_model()
    for value, shown in (
        (np.nan, "a NaN"),
        (-np.inf, "-inf"),
        (None, "a NaN"),
        (1e300, "1e+300 (beyond float32's range)"),
    ):
        x = [0.5] * N_IN
        x[11] = value
        for method in (model.predict, model.predictProbability, model.predictRaw):
            with pytest.raises(ValueError) as info:
                method(x)
            assert (
                str(info.value)
                == f"MLPClassificationModel: the vector has {shown} at index 11; features must be finite numbers"
            )


def test_fit_refuses_non_finite_features_and_a_stray_label_in_one_line(spark):
    rows = [(i % N_CLASSES, [0.1 * i] * N_IN) for i in range(30)]
    rows[4][1][2] = float("nan")
    df = spark.createDataFrame(rows, "label int, x array<double>")
    with pytest.raises(ValueError) as info:
        MLPClassifier(featuresCol="x", maxIter=1, blockSize=8).fit(df)
    assert type(info.value) is ValueError and str(info.value) == (
        "featuresCol 'x' has a NaN at index 2 in a row with label 1; features must be finite numbers"
    )
    rows[4][1][2] = 0.0
    rows[7] = (20000, rows[7][1])
    with pytest.raises(ValueError) as info:
        MLPClassifier(featuresCol="x", maxIter=1, blockSize=8).fit(
            spark.createDataFrame(rows, "label int, x array<double>")
        )
    assert str(info.value) == (
        "labelCol 'label' has labels up to 20000 but only 4 distinct values; class ids must be "
        "0..C-1 (set layers=[20, ..., 20001] if 20001 classes are meant)"
    )


@pytest.mark.parametrize("workers, transport", [(2, "barrier"), (3, "jobs")])  # 3 workers on local[2]: jobs
def test_fit_leaves_no_shard_files_behind(spark, workers, transport):
    import glob

    from pyspark import SparkFiles

    def shard_files(_=None):
        import glob
        import os

        from pyspark import SparkFiles

        return glob.glob(os.path.join(SparkFiles.getRootDirectory(), "dist-mnist-shard-*"))

    before = set(shard_files())
    X, y = blobs(120, seed=8)
    df = spark.createDataFrame(
        [(int(c), list(map(float, x))) for x, c in zip(X, y)], "label int, features array<double>"
    )
    model = MLPClassifier(layers=LAYERS, maxIter=1, blockSize=16, workers=workers).fit(df)
    assert model.summary.metrics["rounds"]["transport"] == transport
    assert set(shard_files()) <= before, sorted(set(shard_files()) - before)
    on_executors = spark.sparkContext.parallelize(range(4), 4).map(shard_files).collect()
    assert all(set(files) <= before for files in on_executors)
    assert glob.glob(SparkFiles.getRootDirectory() + "/*.npy.tmp") == []


@pytest.mark.parametrize(
    "params, message",
    [
        (
            {"workers": 100000},
            "MLPClassifier.fit: workers 100000 is more than the 600 rows of the DataFrame",
        ),
        ({"layers": [20, 100000000, 3]}, "layers [20, 100000000, 3]: a run of this network needs about "),
    ],
    ids=["workers", "layers"],
)
def test_fit_refuses_careless_values_in_one_line_before_any_job(spark, params, message):
    """Before the DataFrame is staged (a job of 100,000 tasks, an allocation of hundreds of GiB)."""
    from pyspark.ml.linalg import Vectors

    x, y = blobs(600, seed=5)
    df = spark.createDataFrame([(int(c), Vectors.dense(v)) for c, v in zip(y, x)], ["label", "features"])
    with pytest.raises(ValueError) as refused:
        MLPClassifier(**params).fit(df)
    assert str(refused.value).startswith(message), str(refused.value)
