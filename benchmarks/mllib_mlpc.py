"""Spark MLlib MultilayerPerceptronClassifier [784, 1000, 10] on dist-mnist's Parquet data.

MLlib's L-BFGS fit cannot report accuracy mid-run or resume, so this runs a schedule of
independent fits with growing maxIter until one reaches --target-accuracy or the next would
overrun --budget-seconds. L-BFGS is deterministic here (fixed seed and partitioning), so fit k
passes through the same iterates as a longer fit and the points form one run's curve.
Each point's time is the one-off data preparation plus that fit's own seconds.
"""

import time

T0 = time.perf_counter()

import argparse
import json
import os
import sys

import numpy as np

N_PIXELS = 784
DEFAULT_MAX_ITERS = "25,50,100,200,400,800"


def spark_session(master: str, driver_memory: str):
    """A local session sized for MLlib: everything, data cache included, lives in the driver JVM."""
    # Executors must run this interpreter: the default `python3` may lack pyarrow/numpy.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # Native BLAS in the JVM (Debian's libopenblas0) must not spawn threads per task:
    # local[2] already runs two tasks on two cores.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(master).appName("mllib-mlpc")
             .config("spark.driver.memory", driver_memory)
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.shuffle.partitions", "2")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def jvm_blas(spark) -> str:
    """The BLAS class MLlib's linear algebra uses: native (JNI) or a pure-Java fallback."""
    try:
        netlib = spark.sparkContext._jvm.dev.ludovic.netlib.blas
        return f"{netlib.BLAS.getInstance().getClass().getSimpleName()} " \
               f"(native: {netlib.NativeBLAS.getInstance().getClass().getSimpleName()})"
    except Exception as e:  # py4j raises its own types; this is only a label
        return f"unknown ({type(e).__name__})"


def arrow_to_features(batches):
    """mapInArrow body: (label int, image binary) batches -> (label double, features list<double>)."""
    import pyarrow as pa

    for batch in batches:
        image = batch.column("image")
        n = len(image)
        # The binary column's buffers are [validity, int32 offsets, bytes]; rows are 784 bytes each.
        offsets = np.frombuffer(image.buffers()[1], np.int32)[image.offset : image.offset + n + 1]
        pixels = np.frombuffer(image.buffers()[2], np.uint8)[offsets[0] : offsets[-1]]
        if len(pixels) != n * N_PIXELS:
            raise ValueError(f"image column holds {len(pixels)} bytes for {n} rows, expected {N_PIXELS} each")
        values = pa.array(pixels.astype(np.float64) / 255.0)
        list_offsets = pa.array(np.arange(0, N_PIXELS * (n + 1), N_PIXELS, dtype=np.int32))
        features = pa.ListArray.from_arrays(list_offsets, values)
        yield pa.RecordBatch.from_arrays([batch.column("label").cast(pa.float64()), features], ["label", "features"])


def load_features(spark, path: str, partitions: int):
    """DataFrame(label double, features DenseVector /255), cached and materialised."""
    from pyspark.ml.functions import array_to_vector
    from pyspark.sql import functions as F

    df = spark.read.parquet(path)
    if df.rdd.getNumPartitions() != partitions:  # small files may be packed into one partition
        df = df.repartition(partitions)
    try:
        import pandas  # noqa: F401 - pyspark's mapInArrow insists on it though it never uses it

        arrays = df.mapInArrow(arrow_to_features, "label double, features array<double>")
    except ImportError:
        # ~4x slower: every pixel crosses the Python/JVM boundary as a pickled float.
        to_array = F.udf(lambda b: (np.frombuffer(b, np.uint8) / 255.0).tolist(), "array<double>", useArrow=False)
        arrays = df.select(F.col("label").cast("double").alias("label"), to_array("image").alias("features"))
    out = arrays.select("label", array_to_vector("features").alias("features")).cache()
    out.count()
    return out


def fit_and_score(train, test, max_iter: int, seed: int, block_size: int) -> tuple[float, float, int]:
    """Fit with maxIter=max_iter; return (fit seconds, test accuracy, iterations run)."""
    from pyspark.ml.classification import MultilayerPerceptronClassifier
    from pyspark.ml.evaluation import MulticlassClassificationEvaluator

    mlpc = MultilayerPerceptronClassifier(layers=[N_PIXELS, 1000, 10], maxIter=max_iter, blockSize=block_size,
                                          seed=seed, solver="l-bfgs")
    t0 = time.perf_counter()
    model = mlpc.fit(train)
    fit_seconds = time.perf_counter() - t0
    acc = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(model.transform(test))
    summary = model.summary() if callable(model.summary) else model.summary  # a method in pyspark 4
    return fit_seconds, acc, summary.totalIterations


def main(argv: list[str] | None = None) -> int:
    """Run the maxIter schedule and print JSON lines plus a summary line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="dataset directory with train/ and test/ Parquet")
    p.add_argument("--target-accuracy", type=float, default=1.0, help="stop once a fit reaches this")
    p.add_argument("--budget-seconds", type=float, default=1200.0, help="total time for all fits")
    p.add_argument("--max-iters", default=DEFAULT_MAX_ITERS, help="comma-separated maxIter schedule")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--driver-memory", default="6g")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--json-out", help="also write the JSON lines to this file")
    args = p.parse_args(argv)
    max_iters = [int(x) for x in args.max_iters.split(",")]
    if any(m < 1 for m in max_iters) or max_iters != sorted(max_iters):
        p.error(f"--max-iters must be increasing positive integers, got {args.max_iters}")

    sink = open(args.json_out, "w") if args.json_out else None

    def emit(record: dict) -> None:
        line = json.dumps(record)
        print(line, flush=True)
        if sink is not None:
            sink.write(line + "\n")

    spark = spark_session(args.master, args.driver_memory)
    try:
        parts = spark.sparkContext.defaultParallelism
        t_prep = time.perf_counter()
        train = load_features(spark, args.data.rstrip("/") + "/train", parts)
        test = load_features(spark, args.data.rstrip("/") + "/test", parts)
        prep_seconds = time.perf_counter() - t_prep
        blas = jvm_blas(spark)
        emit({"prep_seconds": round(prep_seconds, 2), "train_rows": train.count(), "partitions": parts, "blas": blas})

        curve, points, last_fit, stop = [], [], 0.0, "schedule exhausted"
        for i, max_iter in enumerate(max_iters):
            spent = time.perf_counter() - t_prep
            # Fit time grows about linearly in maxIter, so predict the next from the last.
            predicted = last_fit * max_iter / max_iters[i - 1] if i else 0.0
            if i and spent + predicted > args.budget_seconds:
                stop = f"budget: next fit predicted {predicted:.0f}s, {args.budget_seconds - spent:.0f}s left"
                break
            fit_seconds, acc, iters = fit_and_score(train, test, max_iter, args.seed, args.block_size)
            last_fit = fit_seconds
            t = prep_seconds + fit_seconds
            curve.append([round(t, 2), acc])
            points.append({"max_iter": max_iter, "iterations": iters, "fit_seconds": round(fit_seconds, 2),
                           "time_to_accuracy_seconds": round(t, 2), "test_accuracy": acc,
                           "elapsed_seconds": round(time.perf_counter() - T0, 2)})
            emit(points[-1])
            if acc >= args.target_accuracy:
                stop = f"reached target {args.target_accuracy}"
                break
            if iters < max_iter:  # L-BFGS converged; longer fits give the same model
                stop = f"converged after {iters} iterations"
                break
        best = max(points, key=lambda pt: pt["test_accuracy"])
        emit({"system": "mllib", "blas": blas, "prep_seconds": round(prep_seconds, 2),
              "train_seconds": best["fit_seconds"], "iterations": best["iterations"],
              "accuracy": best["test_accuracy"], "time_to_accuracy_seconds": best["time_to_accuracy_seconds"],
              "target_accuracy": args.target_accuracy, "stopped": stop,
              "wall_seconds": round(time.perf_counter() - T0, 2), "curve": curve, "points": points})
    finally:
        spark.stop()
        if sink is not None:
            sink.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
