"""Fit from a user's DataFrame: MNIST as a Parquet dataset with a `features` vector column.

What a Spark user has: a Parquet table with a VectorUDT `features` column (pixels / 255, as
MLlib's examples use) and a numeric `label`, train and test rows flagged by `is_test`. This
script writes that table once (outside the timing), then runs `MLPClassifier.fit` with the
tutorial's settings (15 epochs, the default average mode, validation = the test rows) and
scores the fitted model with `transform` and MLlib's MulticlassClassificationEvaluator.
Reports the test accuracy and the staging time (DataFrame -> our Parquet layout) as a share
of the training time. Writes OUT/fit-vectors.json.

    spark-submit --master 'local[*]' benchmarks/fit_vectors.py --mnist ../shared/data/mnist
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dist_mnist.data import mnist
from dist_mnist.files.atomic import atomic_write_json

TARGET = 0.971


def write_vector_table(spark, source: str, out: str) -> int:
    """MNIST train + test as Parquet with a VectorUDT `features` column; the rows written."""
    from pyspark.ml.functions import array_to_vector

    tables = []
    for split in ("train", "test"):
        images, labels, _ = mnist.load_split(source, split)
        values = pa.array((images.astype(np.float64) / 255.0).ravel())
        offsets = pa.array(np.arange(len(labels) + 1, dtype=np.int32) * images.shape[1])
        tables.append(
            pa.table(
                {
                    "pixels": pa.ListArray.from_arrays(offsets, values),
                    "label": pa.array(labels.astype(np.float64)),
                    "is_test": pa.array(np.full(len(labels), split == "test")),
                }
            )
        )
    raw = out + "-arrays.parquet"
    pq.write_table(pa.concat_tables(tables), raw)
    df = spark.read.parquet(raw).select(array_to_vector("pixels").alias("features"), "label", "is_test")
    df.write.mode("overwrite").parquet(out)
    os.remove(raw)
    return spark.read.parquet(out).count()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mnist", default=os.environ.get("MNIST_DIR", "../shared/data/mnist"))
    p.add_argument("--out", default=str(Path(__file__).parent / "results"))
    p.add_argument("--epochs", type=int, default=15)
    args = p.parse_args()

    from pyspark.ml.evaluation import MulticlassClassificationEvaluator

    from dist_mnist.ml import MLPClassifier
    from dist_mnist.spark.session import get_session

    spark = get_session("dist-mnist fit-vectors benchmark")
    with tempfile.TemporaryDirectory() as scratch:
        table = f"{scratch}/mnist-vectors"
        rows = write_vector_table(spark, args.mnist, table)
        df = spark.read.parquet(table)
        load = os.getloadavg()
        t0 = time.perf_counter()
        model = MLPClassifier(maxIter=args.epochs, validationIndicatorCol="is_test").fit(df)
        fit_seconds = time.perf_counter() - t0
        scored = model.transform(df.where("is_test"))
        accuracy = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(scored)
        summary = model.summary
        result = {
            "command": "spark-submit --master 'local[*]' benchmarks/fit_vectors.py",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machine": {
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "spark": spark.version,
                "master": spark.sparkContext.master,
                "loadavg_before": load,
                "loadavg_after": os.getloadavg(),
            },
            "rows": rows,
            "epochs": args.epochs,
            "layers": model.modelMeta["layer_sizes"],
            "fit_seconds": round(fit_seconds, 2),
            "staging_seconds": round(summary.staging_seconds, 2),
            "train_seconds": round(summary.train_seconds, 2),
            "staging_share_of_training": round(summary.staging_seconds / summary.train_seconds, 3),
            "test_accuracy_evaluator": accuracy,
            "validation_accuracy_per_epoch": summary.validationAccuracy,
            "workers": model.modelMeta["config"]["workers"],
            "target": TARGET,
            "met": accuracy >= TARGET,
        }
    atomic_write_json(Path(args.out) / "fit-vectors.json", result)
    print(
        f"fit from a VectorUDT DataFrame: test accuracy {accuracy:.4f} (target {TARGET}), fit {fit_seconds:.1f}s, "
        f"staging {result['staging_seconds']:.1f}s = {100 * result['staging_share_of_training']:.1f}% "
        f"of training {result['train_seconds']:.1f}s"
    )


if __name__ == "__main__":
    main()
