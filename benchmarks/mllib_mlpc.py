"""Spark MLlib MultilayerPerceptronClassifier [784, 1000, 10] on dist-mnist's Parquet data, one fit a row.

MLlib's L-BFGS fit cannot report accuracy mid-run or resume, so every maxIter of the schedule
(25, 50 and 100 by default) is a separate fit in a process of its own, timed whole: Python and
JVM start-up, data preparation (Parquet to cached vectors), the fit, and scoring the test set.
Each row of OUT/mllib.json is one such process, with its wall seconds, the fit's own seconds and
its test accuracy; nothing is added up across fits. The schedule stops early once a fit reaches
--target-accuracy, once L-BFGS converges, or when the next fit would overrun --budget-seconds.
The record keeps its provenance (command, date, machine, Spark version, BLAS) and the load
average before and after every fit, because other work may share the 2 cores.

    python benchmarks/mllib_mlpc.py --data DATA --out benchmarks/results     # ~15 min on 2 cores
"""

import time

T0 = time.perf_counter()

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

N_PIXELS = 784
DEFAULT_MAX_ITERS = "25,50,100"


def spark_session(master: str, driver_memory: str):
    """A local session sized for MLlib: everything, data cache included, lives in the driver JVM."""
    # Executors must run this interpreter: the default `python3` may lack pyarrow/numpy.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # Native BLAS in the JVM (Debian's libopenblas0) must not spawn threads per task:
    # local[2] already runs two tasks on two cores.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from pyspark.sql import SparkSession

    spark = (
        SparkSession.builder.master(master)
        .appName("mllib-mlpc")
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def jvm_blas(spark) -> str:
    """The BLAS class MLlib's linear algebra uses: native (JNI) or a pure-Java fallback."""
    netlib = spark.sparkContext._jvm.dev.ludovic.netlib.blas
    try:
        used = netlib.BLAS.getInstance().getClass().getSimpleName()
    except Exception as e:  # noqa: BLE001 - py4j raises its own types; this is only a label
        return f"unknown ({type(e).__name__})"
    try:
        netlib.NativeBLAS.getInstance()
        return f"{used} (native BLAS loaded)"
    except Exception:  # noqa: BLE001 - no libblas.so.3: netlib throws and MLlib uses the Java fallback
        return f"{used} (no native BLAS: Java fallback)"


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

    mlpc = MultilayerPerceptronClassifier(
        layers=[N_PIXELS, 1000, 10], maxIter=max_iter, blockSize=block_size, seed=seed, solver="l-bfgs"
    )
    t0 = time.perf_counter()
    model = mlpc.fit(train)
    fit_seconds = time.perf_counter() - t0
    acc = MulticlassClassificationEvaluator(metricName="accuracy").evaluate(model.transform(test))
    summary = model.summary() if callable(model.summary) else model.summary  # a method in pyspark 4
    return fit_seconds, acc, summary.totalIterations


def one_fit(args) -> dict:
    """This process's fit: prepare the data, fit with maxIter=args.one_fit, score the test set."""
    spark = spark_session(args.master, args.driver_memory)
    try:
        parts = spark.sparkContext.defaultParallelism
        t_prep = time.perf_counter()
        train = load_features(spark, args.data.rstrip("/") + "/train", parts)
        test = load_features(spark, args.data.rstrip("/") + "/test", parts)
        prep_seconds = time.perf_counter() - t_prep
        fit_seconds, acc, iters = fit_and_score(train, test, args.one_fit, args.seed, args.block_size)
        return {
            "max_iter": args.one_fit,
            "iterations": iters,
            "prep_seconds": round(prep_seconds, 2),
            "fit_seconds": round(fit_seconds, 2),
            "test_accuracy": acc,
            "train_rows": train.count(),
            "test_rows": test.count(),
            "partitions": parts,
            "blas": jvm_blas(spark),
            "spark_version": spark.version,
            "in_process_seconds": round(time.perf_counter() - T0, 2),
        }
    finally:
        spark.stop()


def fit_process(args, max_iter: int) -> dict:
    """Run one fit as a child process, timed whole, with the load average before and after."""
    from provenance import loadavg  # the script's own directory is on sys.path

    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--one-fit",
        str(max_iter),
        "--data",
        args.data,
        "--master",
        args.master,
        "--driver-memory",
        args.driver_memory,
        "--seed",
        str(args.seed),
        "--block-size",
        str(args.block_size),
    ]
    before = loadavg()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    row = {"max_iter": max_iter, "wall_seconds": round(wall, 2), "loadavg_before": before, "loadavg_after": loadavg()}
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
        return {**row, "status": "failed", "error": f"exit {proc.returncode}: {tail}"}
    return {**row, "status": "ok", **json.loads(lines[-1])}


def stop_reason(rows: list[dict], next_iter: int | None, spent: float, args) -> str | None:
    """Why the schedule ends after these rows, or None to run the next fit."""
    last = rows[-1]
    if last["status"] != "ok":
        return f"fit with maxIter={last['max_iter']} failed"
    if last["test_accuracy"] >= args.target_accuracy:
        return f"reached target accuracy {args.target_accuracy}"
    if last["iterations"] < last["max_iter"]:  # L-BFGS converged; longer fits give the same model
        return f"converged after {last['iterations']} iterations"
    if next_iter is None:
        return "schedule done"
    # the fit's time grows about linearly in maxIter; the rest of the process does not
    predicted = last["wall_seconds"] + last["fit_seconds"] * (next_iter / last["max_iter"] - 1)
    if spent + predicted > args.budget_seconds:
        return (
            f"budget: the fit with maxIter={next_iter} predicted {predicted:.0f} s, "
            f"{args.budget_seconds - spent:.0f} s left"
        )
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the maxIter schedule, one process a fit, and write OUT/mllib.json after every fit."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="dataset directory with train/ and test/ Parquet")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"), help="directory for mllib.json")
    p.add_argument("--max-iters", default=DEFAULT_MAX_ITERS, help="comma-separated maxIter schedule")
    p.add_argument("--target-accuracy", type=float, default=1.0, help="stop once a fit reaches this")
    p.add_argument("--budget-seconds", type=float, default=3600.0, help="total time for all fits")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--driver-memory", default="6g")
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--block-size", type=int, default=128)
    p.add_argument("--one-fit", type=int, metavar="MAX_ITER", help=argparse.SUPPRESS)  # a child's single fit
    args = p.parse_args(argv)
    if args.one_fit is not None:
        print(json.dumps(one_fit(args)), flush=True)
        return 0
    max_iters = [int(x) for x in args.max_iters.split(",")]
    if any(m < 1 for m in max_iters) or max_iters != sorted(max_iters):
        p.error(f"--max-iters must be increasing positive integers, got {args.max_iters}")

    from provenance import loadavg, provenance

    from dist_mnist.files.atomic import atomic_write_json

    doc = {
        **provenance("mllib_mlpc.py", argv),
        "system": "mllib",
        "settings": {
            "layers": [N_PIXELS, 1000, 10],
            "solver": "l-bfgs",
            "master": args.master,
            "driver_memory": args.driver_memory,
            "seed": args.seed,
            "block_size": args.block_size,
            "max_iters": max_iters,
            "target_accuracy": args.target_accuracy,
            "budget_seconds": args.budget_seconds,
            "data": args.data,
        },
        "notes": [
            "Each row is one fit in its own process: wall s is that whole process (start-up, data "
            "preparation, fit, scoring); fit s is mlpc.fit() alone. Rows are not cumulative.",
            "L-BFGS here is deterministic (fixed seed and partitioning), so a shorter fit passes "
            "through the iterates of a longer one.",
        ],
        "rows": [],
    }
    out = Path(args.out) / "mllib.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for i, max_iter in enumerate(max_iters):
        row = fit_process(args, max_iter)
        doc["rows"].append(row)
        print(json.dumps(row), flush=True)
        doc["stopped"] = stop_reason(
            doc["rows"], max_iters[i + 1] if i + 1 < len(max_iters) else None, time.perf_counter() - T0, args
        )
        doc["loadavg_after"] = loadavg()
        ok = [r for r in doc["rows"] if r["status"] == "ok"]
        if ok:
            doc["versions"]["spark"], doc["blas"] = ok[-1]["spark_version"], ok[-1]["blas"]
        atomic_write_json(out, doc)  # after every fit: a long schedule keeps what it measured
        if doc["stopped"]:
            break
    print(f"wrote {out} ({doc['stopped']})")
    return 0 if all(r["status"] == "ok" for r in doc["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
