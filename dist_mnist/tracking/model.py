"""A run's model as MLflow models: the pyfunc (MLflow's "models from code": pyfunc_model.py over
model.npz + model.json, nothing pickled), the ONNX graph as an artifact, and the pyspark.ml
MLPClassificationModel through MLflow's Spark flavour. Called with MLflow imported and a run active.

The pyfunc takes what `dist-mnist predict` reads, so the MNIST Parquet scores as it is:
    model = mlflow.pyfunc.load_model(uri); model.predict(pandas.read_parquet("data/mnist/test"))
    udf = mlflow.pyfunc.spark_udf(spark, uri)   # the signature names the input column
    spark.read.parquet("data/mnist/test").withColumn("scores", udf()).select("*", "scores.*")
"""

from __future__ import annotations

import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from dist_mnist.files.model import MODEL_JSON, MODEL_NPZ

PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")
PYFUNC_NAME, SPARK_NAME, ONNX_DIR = "model", "spark-model", "onnx"
ARTIFACT_KEYS = {"model_npz": MODEL_NPZ, "model_json": MODEL_JSON}  # pyfunc_model.py's keys -> RUN's files


def signature_and_example(meta: dict):
    """(ModelSignature, input example): `image` binary (n_in bytes) or `features` array<float> in;
    `prediction` double and `probability` array<float> out, as `dist-mnist predict` writes them."""
    import pandas as pd
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, DataType, Schema
    from mlflow.types.schema import Array

    n_in = int(meta["layer_sizes"][0])
    if meta.get("feature_kind", "image") == "image":
        inputs = Schema([ColSpec(DataType.binary, "image")])
        example = pd.DataFrame({"image": [bytes(n_in)]})  # one all-black image
    else:
        inputs = Schema([ColSpec(Array(DataType.float), "features")])
        example = pd.DataFrame({"features": [np.zeros(n_in, np.float32)]})
    outputs = Schema([ColSpec(DataType.double, "prediction"), ColSpec(Array(DataType.float), "probability")])
    return ModelSignature(inputs, outputs), example


def requirements(*extra: str) -> list[str]:
    """What loading the model needs, pinned to this environment's versions (given, so MLflow
    does not start a Python process to infer them)."""
    import mlflow
    import pandas as pd

    mlflow_dist = "mlflow-skinny"
    try:
        version(mlflow_dist)
    except PackageNotFoundError:
        mlflow_dist = "mlflow"
    return [f"{mlflow_dist}=={mlflow.__version__}", f"numpy=={np.__version__}", f"pandas=={pd.__version__}", *extra]


def log_pyfunc(run_dir: Path, meta: dict) -> str:
    """Log RUN's model.npz + model.json as the active run's pyfunc model; its URI."""
    import mlflow

    signature, example = signature_and_example(meta)
    info = mlflow.pyfunc.log_model(
        name=PYFUNC_NAME,
        python_model=str(PYFUNC_CODE),
        artifacts={key: str(run_dir / name) for key, name in ARTIFACT_KEYS.items()},
        signature=signature,
        input_example=example,
        pip_requirements=requirements(),
    )
    return info.model_uri


def log_onnx(client, run_id: str, params: dict, meta: dict) -> bool:
    """The model as ONNX (onnx/model.onnx) where the onnx extra is installed; whether it was logged."""
    try:
        import onnx  # noqa: F401 - only whether it is there
    except ImportError:
        return False
    from dist_mnist.outputs.export import to_onnx

    with tempfile.TemporaryDirectory(prefix="dist-mnist-onnx-") as tmp:
        path = Path(tmp) / "model.onnx"
        path.write_bytes(to_onnx(params, meta).SerializeToString())
        client.log_artifact(run_id, str(path), ONNX_DIR)
    return True


def log_spark_model(model, name: str = SPARK_NAME) -> str:
    """An MLPClassificationModel (MLWritable) as the active run's Spark-flavour model; its URI.

    MLflow saves it as a one-stage PipelineModel; mlflow.spark.load_model gives that back, and
    loading needs dist-mnist installed (the stage is our class)."""
    import mlflow

    info = mlflow.spark.log_model(model, name, pip_requirements=requirements("pyspark"))  # artifact_path: its name
    return info.model_uri
