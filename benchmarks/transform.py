"""Transform throughput: dist-mnist's MLPClassificationModel against MLlib's
MultilayerPerceptronClassificationModel, both 784-1000-10 with the SAME weights, in one session.

Inputs: MNIST's 10,000 test rows, and 600,000 rows (the training set repeated 10x), as
`features` VectorUDT of pixels/255 (plus `label`), written once as Parquet and read back by
every run, so both models read the same table. Each run writes the whole output (every input
column plus prediction, probability and rawPrediction) to Spark's `noop` sink, so nothing is
skipped. One warm-up each, then 3 timed runs each, alternating; best and median reported.

Weights: dist-mnist's Xavier initialisation (seed 123), copied into MLlib's flat layout (per
layer W as MLlib's column-major (out, in), which is our row-major (in, out), then b) and given
to MLlib through `initialWeights` with maxIter=0 (checked equal after the fit). The compute is
the same shape; the functions differ: MLlib's hidden layer is a sigmoid, ours a ReLU.
"""

import time

T0 = time.perf_counter()

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
from mllib_mlpc import arrow_to_features, jvm_blas, spark_session
from provenance import loadavg, provenance

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
# the Python workers import arrow_to_features (this directory) and dist_mnist (the repo)
os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "benchmarks"), str(REPO), os.environ.get("PYTHONPATH", "")])

from dist_mnist.ml import MLPClassificationModel
from dist_mnist.nn.model import init_params

LAYERS = [784, 1000, 10]


def vector_table(spark, split_dir: str, repeat: int, partitions: int, out: str):
    """Write split_dir's rows (repeated) as (label double, features VectorUDT pixels/255) Parquet
    in `partitions` files; return it read back."""
    from pyspark.ml.functions import array_to_vector

    df = spark.read.parquet(split_dir)
    if repeat > 1:
        df = df.crossJoin(spark.range(repeat)).drop("id")
    arrays = df.repartition(partitions).mapInArrow(arrow_to_features, "label double, features array<double>")
    arrays.select("label", array_to_vector("features").alias("features")).write.mode("overwrite").parquet(out)
    return spark.read.parquet(out)


def mllib_model(spark, weights: np.ndarray):
    """MLlib's model holding exactly `weights` (fit with maxIter=0 from initialWeights)."""
    from pyspark.ml.classification import MultilayerPerceptronClassifier
    from pyspark.ml.linalg import Vectors

    tiny = spark.createDataFrame(
        [(float(c), Vectors.dense(np.full(784, c / 10))) for c in range(10)], ["label", "features"]
    )
    model = MultilayerPerceptronClassifier(
        layers=LAYERS, initialWeights=Vectors.dense(weights), maxIter=0, seed=123
    ).fit(tiny)
    got = model.weights.toArray()
    if not np.array_equal(got, weights):
        raise RuntimeError(f"MLlib changed the weights with maxIter=0 (max diff {np.abs(got - weights).max()})")
    return model


def run_seconds(df) -> float:
    """Seconds to compute every row and column of df (written to the noop sink)."""
    t = time.perf_counter()
    df.write.format("noop").mode("overwrite").save()
    return time.perf_counter() - t


def measure(df, transforms: dict, runs: int) -> dict:
    """Warm up each transform once, then `runs` alternating timed runs each."""
    rows = df.count()
    for f in transforms.values():
        run_seconds(f(df))
    seconds = {name: [] for name in transforms}
    for _ in range(runs):
        for name, f in transforms.items():
            seconds[name].append(run_seconds(f(df)))
    out = {"rows": rows, "partitions": df.rdd.getNumPartitions()}
    for name, s in seconds.items():
        out[name] = {
            "seconds": [round(x, 3) for x in s],
            "best_seconds": round(min(s), 3),
            "median_seconds": round(statistics.median(s), 3),
            "rows_per_second_best": round(rows / min(s)),
            "rows_per_second_median": round(rows / statistics.median(s)),
        }
    for stat in ("best", "median"):
        out[f"speedup_{stat}"] = round(out["mllib"][f"{stat}_seconds"] / out["dist_mnist"][f"{stat}_seconds"], 2)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="dist-mnist Parquet DATA (train/ and test/), from `dist-mnist ingest`")
    p.add_argument("--work", default="/tmp/dist-mnist-transform-bench", help="where the vector tables are written")
    p.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "transform.json"))
    p.add_argument("--master", default="local[2]")
    p.add_argument("--driver-memory", default="4g")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--partitions", type=int, default=4, help="files (and partitions) of each vector table")
    p.add_argument("--repeat", type=int, default=10, help="copies of the training set in the large table")
    args = p.parse_args(argv)

    record = provenance("transform.py", argv)
    spark = spark_session(args.master, args.driver_memory)
    try:
        params = init_params(LAYERS, 123)
        ours = MLPClassificationModel(params, {"layer_sizes": LAYERS, "feature_kind": "features"})
        theirs = mllib_model(spark, ours.weights.toArray())
        transforms = {"dist_mnist": ours.transform, "mllib": theirs.transform, "scan_only": lambda df: df}
        tables = {
            "test_10k": vector_table(spark, f"{args.data}/test", 1, args.partitions, f"{args.work}/test"),
            f"train_x{args.repeat}": vector_table(
                spark, f"{args.data}/train", args.repeat, args.partitions, f"{args.work}/train_x{args.repeat}"
            ),
        }
        results = {name: measure(df, transforms, args.runs) for name, df in tables.items()}
        record |= {
            "what": "rows/s of Model.transform, whole output to the noop sink; scan_only = reading the input alone",
            "weights": "same: dist-mnist Xavier init (seed 123) in MLlib's layout via initialWeights + maxIter=0, "
            "checked equal; MLlib's hidden layer is sigmoid, ours ReLU (same compute shape)",
            "master": args.master,
            "jvm_blas": jvm_blas(spark),
            "runs": args.runs,
            "loadavg_after": loadavg(),
            "results": results,
            "wall_seconds": round(time.perf_counter() - T0, 1),
        }
    finally:
        spark.stop()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(args.out).with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(args.out)
    print(json.dumps(record, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
