"""pyspark.ml from a Spark Connect client: MLPClassifier fit, transform, save/load, a Pipeline and a
CrossValidator, with no JVM in the client; the same model and scores as a classic session's
(which runs in a subprocess: this process is a Connect client)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from dist_mnist.ml import MLPClassificationModel, MLPClassifier

from ..support import REPO
from ..support.models import assert_identical
from .client import classic_env

N_IN, N_CLASSES = 20, 3
LAYERS = [N_IN, 16, N_CLASSES]
FIT = {"layers": LAYERS, "maxIter": 3, "blockSize": 32, "stepSize": 0.05, "seed": 7, "workers": 2}


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """tests/spark/test_ml.py's 20-feature, 3-class problem."""
    rng = np.random.default_rng([seed, 11])
    centres = np.random.default_rng(5).normal(0, 2.0, (N_CLASSES, N_IN))
    y = rng.integers(0, N_CLASSES, n)
    return centres[y] + rng.normal(0, 1.0, (n, N_IN)), y


def rows(n: int, seed: int) -> list[tuple]:
    X, y = blobs(n, seed)
    return [(i, int(label), *map(float, x)) for i, (x, label) in enumerate(zip(X, y))]


COLUMNS = ["id", "label", *[f"f{j}" for j in range(N_IN)]]


@pytest.fixture(scope="module")
def frames(cspark):
    """{"train", "test"}: columns id, label, f0..f19 and an assembled `features` vector."""
    from pyspark.ml.feature import VectorAssembler

    assemble = VectorAssembler(inputCols=COLUMNS[2:], outputCol="features")
    return {
        split: assemble.transform(cspark.createDataFrame(rows(n, seed), COLUMNS))
        for split, (n, seed) in {"train": (400, 0), "test": (150, 1)}.items()
    }


def scored(df) -> list[tuple]:
    """(id, prediction, probability) of every row, by id."""
    return [
        (r["id"], r["prediction"], tuple(r["probability"]))
        for r in df.select("id", "prediction", "probability").orderBy("id").collect()
    ]


CLASSIC_FIT = """
import json, sys
from dist_mnist.spark.session import get_session
from dist_mnist.ml import MLPClassifier
from pyspark.ml.feature import VectorAssembler
spark = get_session("dist-mnist-classic", "local[2]")
spec = json.loads(open(sys.argv[1]).read())
df = spark.createDataFrame([tuple(r) for r in spec["rows"]], spec["columns"])
df = VectorAssembler(inputCols=spec["columns"][2:], outputCol="features").transform(df)
MLPClassifier(**spec["fit"]).fit(df).write().save(spec["out"])
spark.stop()
"""


def _classic_fit(tmp_path, train_rows) -> str:
    """The same fit with a classic local[2] session, in a process of its own; the saved model's path."""
    out = str(tmp_path / "classic-model")
    spec = tmp_path / "classic-fit.json"
    spec.write_text(json.dumps({"rows": train_rows, "columns": COLUMNS, "fit": FIT, "out": out}))
    env = classic_env(SPARK_CONF_DIR=str(REPO / "conf"))
    env["PYSPARK_SUBMIT_ARGS"] = "--conf spark.ui.enabled=false --conf spark.driver.host=127.0.0.1 pyspark-shell"
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CLASSIC_FIT), str(spec)],
        check=False,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def test_fit_transform_save_load_under_connect_is_the_classic_model(cspark, frames, tmp_path):
    model = MLPClassifier(**FIT).fit(frames["train"])
    assert isinstance(model, MLPClassificationModel) and model.summary.totalIterations == 3
    out = scored(model.transform(frames["test"]))
    X, _ = blobs(150, 1)
    expected = [model.predictProbability(x).toArray() for x in X]  # the NumPy forward pass, one vector at a time
    np.testing.assert_allclose([p for _, _, p in out], expected, rtol=1e-5, atol=1e-6)
    assert [pred for _, pred, _ in out] == [float(np.argmax(p)) for p in expected]
    accuracy = np.mean([pred == label for (_, pred, _), label in zip(out, blobs(150, 1)[1])])
    assert accuracy > 0.9, accuracy

    path = str(tmp_path / "model")
    model.write().save(path)
    with pytest.raises(FileExistsError, match="already exists"):
        model.write().save(path)
    model.write().overwrite().save(path)  # replaces it, through pyarrow.fs: no JVM in this client
    loaded = MLPClassificationModel.load(path)
    assert_identical(loaded.parameters, model.parameters)
    assert loaded.summary.objectiveHistory == model.summary.objectiveHistory
    assert scored(loaded.transform(frames["test"])) == out

    # a classic session fits the same model, and its save loads here
    classic = MLPClassificationModel.load(_classic_fit(tmp_path, rows(400, 0)))
    assert_identical(classic.parameters, model.parameters)


def test_a_pipeline_fits_transforms_saves_and_loads_under_connect(cspark, frames, tmp_path):
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.ml.feature import StandardScaler, VectorAssembler

    train, test = (frames[s].drop("features") for s in ("train", "test"))
    stages = [
        VectorAssembler(inputCols=COLUMNS[2:], outputCol="raw"),
        StandardScaler(inputCol="raw", outputCol="features"),
        MLPClassifier(**FIT),
    ]
    fitted = Pipeline(stages=stages).fit(train)
    out = scored(fitted.transform(test))
    assert len(out) == 150 and np.mean([p == y for (_, p, _), y in zip(out, blobs(150, 1)[1])]) > 0.9

    path = str(tmp_path / "pipeline-model")
    fitted.write().save(path)
    fitted.write().overwrite().save(path)
    loaded = PipelineModel.load(path)
    assert [type(s).__name__ for s in loaded.stages] == [
        "VectorAssembler",
        "StandardScalerModel",
        "MLPClassificationModel",
    ]
    assert_identical(loaded.stages[-1].parameters, fitted.stages[-1].parameters)
    assert scored(loaded.transform(test)) == out

    Pipeline(stages=stages).write().save(str(tmp_path / "pipeline"))  # the unfitted Pipeline too
    again = Pipeline.load(str(tmp_path / "pipeline")).fit(train)
    assert_identical(again.stages[-1].parameters, fitted.stages[-1].parameters)


def test_a_cross_validator_over_the_estimator_under_connect(cspark, frames, tmp_path):
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator
    from pyspark.ml.tuning import CrossValidator, CrossValidatorModel, ParamGridBuilder

    clf = MLPClassifier(**{**FIT, "maxIter": 2})
    grid = ParamGridBuilder().addGrid(clf.stepSize, [0.05, 1e-5]).build()
    evaluator = MulticlassClassificationEvaluator(metricName="accuracy")
    cv = CrossValidator(estimator=clf, estimatorParamMaps=grid, evaluator=evaluator, numFolds=2, seed=3)
    fitted = cv.fit(frames["train"])
    assert len(fitted.avgMetrics) == 2
    # a step of 1e-5 for 2 epochs barely moves the random init: the larger step must win
    assert fitted.avgMetrics[0] > fitted.avgMetrics[1], fitted.avgMetrics
    best = fitted.bestModel
    assert isinstance(best, MLPClassificationModel) and best.getStepSize() == 0.05
    assert evaluator.evaluate(best.transform(frames["test"])) > 0.9

    path = str(tmp_path / "cv-model")
    fitted.write().save(path)
    loaded = CrossValidatorModel.load(path)
    assert loaded.avgMetrics == fitted.avgMetrics
    assert_identical(loaded.bestModel.parameters, best.parameters)
    assert [m[loaded.getEstimator().stepSize] for m in loaded.getEstimatorParamMaps()] == [0.05, 1e-5]
