"""rows/s of `predict_to_parquet` (the `dist-mnist predict` job) on a split, beside a plain
Parquet copy of the same split (read + write, no scoring) in the same Spark application.

    python benchmarks/predict.py --model runs/tutorial --data data/mnist/test --label after

Writes results/predict-LABEL.json. Run it on two commits with the same arguments to compare
them: the copy's rows/s is the floor both runs share, so the ratio to it is the figure that
survives a busy machine better than rows/s alone. `--batch-function` (where predict has
`located_inputs`) also times predict's Arrow batch function alone, in this process, against
the forward pass alone on the same rows: the cost of finding each row's file and row.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dist_mnist.spark.predict import predict_to_parquet  # noqa: E402
from dist_mnist.spark.session import get_session  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def batch_function_seconds(model: str, data: str, repeat: int) -> dict[str, list[float]]:
    """predict's batch function on the split's rows in batches of 10,000 (Spark's Arrow batch
    size), each with its file and row columns, against the forward pass alone."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet  # noqa: F401 - pa.parquet

    from dist_mnist.artifacts import load_model
    from dist_mnist.data.parquet import images_of
    from dist_mnist.features import FeatureKind
    from dist_mnist.ml.scoring import scores_of
    from dist_mnist.spark.dataset import read_footers
    from dist_mnist.spark.predict import FILE, ROW, make_batch_fn

    params, _ = load_model(model)
    batches = []
    for path, _, _ in read_footers(data):
        table = pa.parquet.read_table(path)
        table = table.append_column(FILE, pa.array([f"file:{path}"] * table.num_rows))
        table = table.append_column(ROW, pa.array(np.arange(table.num_rows)))
        batches += table.to_batches(max_chunksize=10_000)

    class Value:  # stands in for the broadcast and the accumulator
        value = params

        def add(self, error):
            raise AssertionError(error)

    run = make_batch_fn(Value(), FeatureKind.IMAGE, params["W0"].shape[0], Value())
    images = [images_of(b.column("image"), "") for b in batches]
    out = {"batch_function": [], "forward_pass": []}
    for _ in range(repeat):
        out["batch_function"].append(timed(lambda: list(run(iter(batches)))))
        out["forward_pass"].append(timed(lambda: [scores_of(params, x) for x in images]))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="run directory with model.npz")
    p.add_argument("--data", required=True, help="Parquet split to score")
    p.add_argument("--label", required=True, help="results/predict-LABEL.json")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--master", default="local[2]")
    p.add_argument("--batch-function", action="store_true", help="also time the batch function alone")
    args = p.parse_args()
    os.environ.setdefault("SPARK_CONF_DIR", str(Path(__file__).resolve().parents[1] / "conf"))
    spark = get_session("bench-predict", args.master)
    rows = spark.read.parquet(args.data).count()
    work = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    try:
        def predict(i):
            return lambda: predict_to_parquet(spark, args.model, args.data, str(work / f"pred-{i}"))

        def copy(i):
            return lambda: spark.read.parquet(args.data).write.parquet(str(work / f"copy-{i}"))

        timed(predict("warm"))
        timed(copy("warm"))
        seconds = {"predict": [], "copy": []}
        for i in range(args.repeat):  # interleaved, so a busy moment hits both
            seconds["predict"].append(timed(predict(i)))
            seconds["copy"].append(timed(copy(i)))
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.batch_function:
        seconds.update(batch_function_seconds(args.model, args.data, args.repeat))
    median = {k: statistics.median(v) for k, v in seconds.items()}
    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "commit": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                 cwd=Path(__file__).parent).stdout.strip(),
        "rows": rows, "master": args.master, "load_average": os.getloadavg(),
        "seconds": seconds, "median_seconds": median,
        "rows_per_second": {k: rows / v for k, v in median.items()},
        "predict_over_copy_seconds": median["predict"] / median["copy"],
    }
    if args.batch_function:
        result["batch_function_over_forward_pass_seconds"] = median["batch_function"] / median["forward_pass"]
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"predict-{args.label}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k in ("rows_per_second", "load_average") or "_over_" in k}))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
