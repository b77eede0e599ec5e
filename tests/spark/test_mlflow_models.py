"""The MLflow models of a run against `dist-mnist predict` on the real MNIST test set (pyfunc in
pandas, pyfunc as a Spark UDF), the pyspark.ml model through mlflow.spark, and
MLPClassifier.fit logging into an active MLflow run (and nowhere without one)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dist_mnist.config import load_config

from ..support import REPO

mlflow = pytest.importorskip("mlflow")
pytestmark = pytest.mark.mlflow  # and `spark`, as everything in tests/spark/


@pytest.mark.mnist
def test_pyfunc_and_spark_udf_predict_as_dist_mnist_predict_on_the_mnist_test_set(
    spark, mlflow_store, mnist_parquet, tmp_path
):
    from dist_mnist.driver import train
    from dist_mnist.spark.predict import predict_to_parquet

    config = load_config(REPO / "conf" / "tutorial.toml", ["epochs=1", "workers=2", "tracking=true"])
    result = train(spark, config, str(mnist_parquet), str(tmp_path / "RUN"), log=lambda *_: None)
    (run,) = mlflow.search_runs(experiment_names=["dist-mnist"], output_format="list")
    assert run.info.status == "FINISHED" and run.data.params["workers"] == "2"
    assert result.scores["accuracy"] > 0.85
    uri = f"runs:/{run.info.run_id}/model"

    rows = predict_to_parquet(spark, str(tmp_path / "RUN"), str(mnist_parquet / "test"), str(tmp_path / "pred"))
    assert rows == 10_000
    expected = pd.read_parquet(tmp_path / "pred")  # label, image, prediction, probability: predict's output

    # predictions equal; probabilities to float32 rounding: `predict` drops the pixel columns that
    # are 0 in all of an Arrow batch, so its sums of 784 float32 products run in another order
    close = {"rtol": 1e-5, "atol": 1e-7}
    scored = mlflow.pyfunc.load_model(uri).predict(expected[["image"]])  # the pyfunc, in pandas
    assert np.array_equal(scored["prediction"].to_numpy(), expected["prediction"].to_numpy())
    np.testing.assert_allclose(np.stack(scored["probability"]), np.stack(expected["probability"]), **close)

    udf = mlflow.pyfunc.spark_udf(spark, uri)  # the pyfunc on Spark, the image column named by the signature
    both = (
        spark.read.parquet(str(tmp_path / "pred"))
        .withColumn("udf", udf())
        .select("prediction", "probability", "udf.prediction", "udf.probability")
    )
    got = both.toPandas().to_numpy()
    assert len(got) == 10_000
    assert np.array_equal(got[:, 0].astype(float), got[:, 2].astype(float))
    np.testing.assert_allclose(np.stack(got[:, 1]), np.stack(got[:, 3]), **close)


def blobs_frame(spark, n=400, seed=0):
    """A 3-class, 4-feature DataFrame with a vector `features` column."""
    from pyspark.ml.linalg import Vectors

    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(0, 3, (3, 4))[y] + rng.normal(0, 1, (n, 4))
    return spark.createDataFrame([(int(c), Vectors.dense(x)) for c, x in zip(y, X)], ["label", "features"])


def test_the_classification_model_logs_with_mlflow_spark_and_loads_back(spark, mlflow_store):
    from dist_mnist.ml import MLPClassifier
    from dist_mnist.tracking.model import log_spark_model

    df = blobs_frame(spark)
    model = MLPClassifier(layers=[4, 8, 3], maxIter=2, blockSize=32, stepSize=0.05, workers=2).fit(df)
    assert not mlflow.search_runs(search_all_experiments=True, output_format="list")  # no run active: none made
    with mlflow.start_run() as run:
        uri = log_spark_model(model)
    loaded = mlflow.spark.load_model(uri)
    cols = ["prediction", "probability"]
    assert loaded.transform(df).select(*cols).collect() == model.transform(df).select(*cols).collect()
    assert mlflow.get_run(run.info.run_id).info.status == "FINISHED"


def test_fit_logs_into_the_active_run(spark, mlflow_store):
    from dist_mnist.ml import MLPClassifier

    df = blobs_frame(spark, seed=1)
    with mlflow.start_run(run_name="notebook") as active:
        model = MLPClassifier(layers=[4, 8, 3], maxIter=2, blockSize=32, workers=2).fit(df)
    run = mlflow.get_run(active.info.run_id)
    assert run.info.status == "FINISHED"  # ended by its owner, not by fit
    assert run.data.params["epochs"] == "2" and run.data.params["layer_sizes"] == "[4, 8, 3]"
    losses = [m.value for m in mlflow.MlflowClient().get_metric_history(run.info.run_id, "train_loss")]
    assert losses == pytest.approx(model.summary.objectiveHistory)
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")  # features as arrays of floats
    frame = pd.DataFrame({"features": [np.asarray(v.toArray(), np.float32) for v in df.toPandas()["features"]]})
    spark_predictions = [r.prediction for r in model.transform(df).select("prediction").collect()]
    assert pyfunc.predict(frame)["prediction"].tolist() == spark_predictions
    assert mlflow.spark.load_model(f"runs:/{run.info.run_id}/spark-model").transform(df).count() == df.count()


def test_fit_starts_a_run_of_its_own_only_when_asked(spark, mlflow_store):
    from dist_mnist.ml import MLPClassifier
    from dist_mnist.tracking.fit import autolog

    df = blobs_frame(spark, seed=2)
    autolog(start_run=True, experiment="fits")
    try:
        MLPClassifier(layers=[4, 8, 3], maxIter=1, blockSize=32, workers=2).fit(df)
        autolog(disable=True)
        with mlflow.start_run(run_name="not-logged-to") as ignored:
            MLPClassifier(layers=[4, 8, 3], maxIter=1, blockSize=32, workers=2).fit(df)
    finally:
        autolog()
    (own,) = mlflow.search_runs(experiment_names=["fits"], output_format="list")
    assert own.info.run_name == "MLPClassifier.fit" and own.info.status == "FINISHED"
    assert own.data.params["epochs"] == "1"
    assert not mlflow.get_run(ignored.info.run_id).data.params
