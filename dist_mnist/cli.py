"""The `dist-mnist` command: download, ingest, train, evaluate, predict, report, export.

Exit status: 0 success, 2 a usage or input error, 1 a failure (a broken environment, a
failed download, a diverged run; a bug also exits 1, with its traceback), 130 Ctrl-C.
User mistakes and failures end in one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path

from dist_mnist.cli_parser import parser

EXIT_FAILURE, EXIT_USER_ERROR, EXIT_INTERRUPTED = 1, 2, 130
PROJECT_CONF = Path(__file__).resolve().parents[1] / "conf"
LOG_LEVEL_VAR = "DIST_MNIST_SPARK_LOG_LEVEL"  # read by conf/log4j2.properties and get_context


def _session(app: str, master: str | None, remote: str | None = None, before: str = "training started"):
    """A Spark Connect session at `remote` (sc://HOST:PORT), or a classic one on _context's SparkContext."""
    if remote:
        from dist_mnist.spark.session import connect_session, ship_package

        if master:
            raise ValueError(
                "--master and --remote (or SPARK_REMOTE) exclude each other: the Connect server has its own"
            )
        spark = connect_session(remote, app)
        ship_package(spark)  # the executors run this client's dist_mnist, whatever they have installed
        return spark
    from pyspark.sql import SparkSession

    return SparkSession(_context(app, master, before))


def _context(app: str, master: str | None, before: str = "Spark started"):
    """The SparkContext; a Ctrl-C while it starts waits for the JVM, then raises
    KeyboardInterrupt("interrupted before {before}; nothing was written")."""
    from dist_mnist.driver.progress import GracefulStop
    from dist_mnist.spark.session import check_environment, get_context, set_jvm_log_level

    # Py4J logs a traceback of its own when Ctrl-C lands inside a call to the JVM; the
    # interruption is reported once, in one line, by main().
    logging.getLogger("py4j").setLevel(logging.CRITICAL)

    if "SPARK_CONF_DIR" not in os.environ and PROJECT_CONF.is_dir():
        os.environ["SPARK_CONF_DIR"] = str(PROJECT_CONF)  # conf/spark-defaults.conf, conf/log4j2.properties
    interrupted = f"interrupted before {before}; nothing was written"
    with GracefulStop(lambda: print("Ctrl-C: stopping once Spark has started", flush=True)) as stop:
        try:
            # pyspark's launcher cannot stop a JVM it is starting: interrupted, the JVM prints a
            # trace and lives on. So a Ctrl-C waits for it (a few seconds), and so does a second
            # one; once the JVM runs, a second Ctrl-C stops at once.
            stop.abortable = False
            check_environment()  # a Ctrl-C also stops its `java -version`: its error is not the story
            set_jvm_log_level(os.environ.get(LOG_LEVEL_VAR, "WARN"), PROJECT_CONF / "log4j2.properties")
            stop.abortable = True
            sc = get_context(app, master)
        except BaseException as e:
            if stop.requested or isinstance(e, KeyboardInterrupt):
                raise KeyboardInterrupt(interrupted) from None
            raise
    if stop.requested:
        raise KeyboardInterrupt(interrupted)
    return sc


def _ingest(args: argparse.Namespace) -> None:
    from dist_mnist.data.ingest import ingest

    if not args.source:
        raise ValueError("ingest needs --source DIR (or MNIST_DIR) with the four MNIST IDX files")
    meta = ingest(args.source, args.out, args.partitions, args.seed, args.overwrite)
    rows = {k: v["rows"] for k, v in meta["splits"].items()}
    print(f"ingested {rows} rows into {args.out} ({args.partitions} parts per split, seed {args.seed})")


def _train(args: argparse.Namespace) -> None:
    from dist_mnist.config import load_config
    from dist_mnist.driver import prepare, train_prepared
    from dist_mnist.runs import EVALUATION_TXT

    tracking = ["tracking=true"] if args.mlflow or args.experiment else []
    config = load_config(args.config, [*args.set, *tracking])  # bad input fails before Spark starts
    tracker = None
    if config.tracking:  # without MLflow installed: one line, before anything is touched
        from dist_mnist.tracking.mlflow_tracker import MLflowTracker

        tracker = MLflowTracker(args.experiment)
    # the run directory (locked: one train per RUN), the splits and a resumed checkpoint,
    # checked before Spark starts; nothing is touched until they are
    with prepare(config, args.data, args.out, args.resume, args.overwrite) as run:
        if run.state.tracking_run_id and not run.config.tracking:
            print(f"note: this run is tracked as MLflow run {run.state.tracking_run_id}; add --mlflow to go on")
        run.phases.mark("prepare")
        # the in-process transport needs no Spark: W workers one after another in this process
        spark = None if config.transport == "inprocess" else _session("dist-mnist-train", args.master, args.remote)
        if spark is not None:
            run.phases.mark("spark_start")  # the JVM (or the Connect client) and the session, a phase of its own
        result = train_prepared(spark, run, tracker=tracker)
    stats = result.stats()
    if stats is not None:
        print("\n".join(line for line in stats.splitlines() if not line.startswith("Examples labeled as")).strip())
        print(f"\nDL4J's full stats(), with its 'Examples labeled as ...' lines: {Path(args.out, EVALUATION_TXT)}")
    print(f"model written to {args.out} (model.npz, model.json)")


def _export(args: argparse.Namespace) -> None:
    from dist_mnist.export import export_onnx

    model = export_onnx(args.run, args.onnx, args.overwrite)
    props = {p.key: p.value for p in model.metadata_props}
    print(
        f"wrote {args.onnx}: MLP {props['layer_sizes']}, feature_kind {props['feature_kind']}, "
        f"inputs 'features', outputs 'probability', 'prediction', 'rawPrediction'"
    )


def _evaluate(args: argparse.Namespace) -> None:
    """dist-mnist evaluate: classic or, with --remote, from a Spark Connect client."""
    from dist_mnist.artifacts import load_model, model_files
    from dist_mnist.paths import refuse_overlap
    from dist_mnist.spark.dataset import describe_split
    from dist_mnist.spark.evaluate import evaluate_model

    load_model(args.model)  # a bad model, --json or split fails before Spark starts
    if args.json:
        if Path(args.json).is_dir():
            raise ValueError(f"{args.json}: is a directory (--json takes a file name)")
        refuse_overlap(args.json, "--json", {"--data": args.data, **model_files(args.model)})
        if not Path(args.json).resolve().parent.is_dir():
            raise FileNotFoundError(f"{Path(args.json).parent}: no such directory (for --json {args.json})")
    describe_split(args.data)
    spark = _session("dist-mnist-evaluate", args.master, args.remote, "Spark started")
    print(evaluate_model(spark, args.model, args.data, args.json))


def _predict(args: argparse.Namespace) -> None:
    """dist-mnist predict: classic or, with --remote, from a Spark Connect client."""
    from dist_mnist.artifacts import load_model, model_files
    from dist_mnist.paths import refuse_overlap
    from dist_mnist.spark.predict import check_input, predict_to_parquet

    load_model(args.model)  # a bad model or input fails before Spark starts
    refuse_overlap(args.out, "--out", {"--data": args.data, **model_files(args.model)})
    if Path(args.out).exists() and not args.overwrite:
        raise FileExistsError(f"{args.out}: already exists (pass --overwrite to replace it)")
    check_input(args.data)
    spark = _session("dist-mnist-predict", args.master, args.remote, "Spark started")
    written = predict_to_parquet(spark, args.model, args.data, args.out, args.overwrite)
    print(f"wrote {written} predictions to {args.out}")


def _run(args: argparse.Namespace) -> int:
    """Run the parsed command: 0, or an exception that main() turns into one line and an exit status."""
    if getattr(args, "verbose", False):
        os.environ[LOG_LEVEL_VAR] = "INFO"  # before the JVM starts, so its start-up is logged too
    if args.command == "download":
        from dist_mnist.data.download import download

        download(args.out)
    elif args.command == "ingest":
        _ingest(args)
    elif args.command == "train":
        _train(args)
    elif args.command == "evaluate":
        _evaluate(args)
    elif args.command == "predict":
        _predict(args)
    elif args.command == "report":
        from dist_mnist.report import write_report

        write_report(args.run, args.data)
    elif args.command == "export":
        _export(args)
    return 0


_PY_ERROR = re.compile(r"^(?:\w+\.)*(ValueError|FileNotFoundError|FileExistsError|RuntimeError): (.+)$", re.MULTILINE)


def user_message(e: BaseException) -> str | None:
    """The one-line message of a user error, also when it was raised on an executor."""
    if isinstance(e, KeyboardInterrupt):
        return str(e) or "interrupted"
    if isinstance(e, (ValueError, FileNotFoundError, FileExistsError, RuntimeError)):
        return str(e) or type(e).__name__
    text = str(e)
    if "PythonException" in text or "Py4JJavaError" in type(e).__name__ or "PythonException" in type(e).__name__:
        found = _PY_ERROR.findall(text)
        if found:
            return found[-1][1].strip()
    return None


def exit_code(e: BaseException) -> int:
    """130 for Ctrl-C, 1 for a failure (RuntimeError, also on an executor), else 2 (bad input)."""
    if isinstance(e, KeyboardInterrupt):
        return EXIT_INTERRUPTED
    if isinstance(e, RuntimeError):
        return EXIT_FAILURE
    if not isinstance(e, (ValueError, FileNotFoundError, FileExistsError)):
        found = _PY_ERROR.findall(str(e))
        if found and found[-1][0] == "RuntimeError":
            return EXIT_FAILURE
    return EXIT_USER_ERROR


def _train_interrupted(out: str) -> str:
    """What a Ctrl-C that train() did not word itself left behind."""
    from dist_mnist.checkpoint import CHECKPOINT_NPZ
    from dist_mnist.runs import partial_dir

    staging = partial_dir(Path(out))
    if (staging / CHECKPOINT_NPZ).exists():
        return f"interrupted; the last checkpoint is in {staging} (resume with --resume)"
    return "interrupted before training started; nothing was written"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and the jobs/ scripts."""
    args = parser().parse_args(argv)
    try:
        return _run(args)
    except BaseException as e:  # sorted into user errors (one line) and bugs (re-raised) below
        if isinstance(e, SystemExit):
            raise
        from dist_mnist.driver.progress import close_bars

        close_bars()  # a progress bar left on the terminal would run into the error's line
        if isinstance(e, KeyboardInterrupt) and not str(e) and args.command == "train":
            e = KeyboardInterrupt(_train_interrupted(args.out))  # Ctrl-C while importing or checking
        msg = user_message(e)
        if msg is None:
            raise
        print(f"dist-mnist {args.command}: error: {msg}", file=sys.stderr)
        return exit_code(e)


if __name__ == "__main__":
    sys.exit(main())
