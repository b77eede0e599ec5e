"""rows/s of `predict_to_parquet` (the `dist-mnist predict` job) on a split, beside a plain
Parquet copy of the same split (read + write, no scoring) in the same Spark application.

    python benchmarks/predict.py --model runs/tutorial --data data/mnist/test --label after

Writes results/predict-LABEL.json. Run it on two commits with the same arguments to compare
them: the copy's rows/s is the floor both runs share, so the ratio to it is the figure that
survives a busy machine better than rows/s alone.
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="run directory with model.npz")
    p.add_argument("--data", required=True, help="Parquet split to score")
    p.add_argument("--label", required=True, help="results/predict-LABEL.json")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--master", default="local[2]")
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
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"predict-{args.label}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("rows_per_second", "predict_over_copy_seconds", "load_average")}))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
