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

EXIT_FAILURE, EXIT_USER_ERROR, EXIT_INTERRUPTED = 1, 2, 130
PROJECT_CONF = Path(__file__).resolve().parents[1] / "conf"
LOG_LEVEL_VAR = "DIST_MNIST_SPARK_LOG_LEVEL"  # read by conf/log4j2.properties and get_context
VERBOSE_HELP = "show Spark's INFO log (default: warnings and errors only)"
EXIT_CODES = "exit status: 0 success, 2 usage or input error, 1 failure, 130 interrupted (Ctrl-C)"
EXAMPLES = {
    "download": ["dist-mnist download --out data/raw"],
    "ingest": ["dist-mnist ingest --source data/raw --out data/mnist --partitions 2 --seed 123"],
    "train": [
        "dist-mnist train --data data/mnist --out runs/tutorial",
        "dist-mnist train --data data/mnist --out runs/deep --config conf/deep.toml --set epochs=20",
        "dist-mnist train --data data/mnist --out runs/tutorial --resume",
        "dist-mnist train --data data/mnist --out runs/tutorial --mlflow",
        "spark-submit --master 'local[2]' jobs/train.py --data data/mnist --out runs/tutorial",
        "dist-mnist train --remote sc://HOST:15002 --data /shared/mnist --out runs/tutorial",
    ],
    "evaluate": [
        "dist-mnist evaluate --model runs/tutorial --data data/mnist/test",
        "dist-mnist evaluate --remote sc://HOST:15002 --model runs/tutorial --data /shared/mnist/test",
    ],
    "predict": [
        "dist-mnist predict --model runs/tutorial --data data/mnist/test --out predictions/test",
        "spark-submit jobs/predict.py --model runs/tutorial --data data/mnist/test --out predictions/test",
        (
            "dist-mnist predict --remote sc://HOST:15002 --model runs/tutorial --data /shared/mnist/test "
            "--out /shared/predictions/test"
        ),
    ],
    "report": ["dist-mnist report runs/tutorial", "dist-mnist report runs/tutorial --data data/mnist"],
    "export": [
        "dist-mnist export runs/tutorial --onnx runs/tutorial/model.onnx",
        "dist-mnist export runs/tutorial --onnx exported/mnist-mlp.onnx --overwrite",
    ],
}


def _command(sub, name: str, summary: str) -> argparse.ArgumentParser:
    """A subcommand whose --help ends with its examples and the exit codes."""
    examples = "\n".join(f"  {line}" for line in EXAMPLES[name])
    return sub.add_parser(
        name,
        help=summary,
        description=summary[0].upper() + summary[1:] + ".",
        epilog=f"examples:\n{examples}\n\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _remote_option(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--remote",
        default=os.environ.get("SPARK_REMOTE"),
        metavar="sc://HOST:PORT",
        help=f"{verb} from this Spark Connect server's cluster instead (default: $SPARK_REMOTE)",
    )


def _scoring_commands(sub) -> None:
    """The evaluate and predict subcommands."""
    e = _command(sub, "evaluate", "DL4J-style report of a trained model on a Parquet split")
    e.add_argument("--model", required=True, help="run directory with model.npz and model.json")
    e.add_argument("--data", required=True, help="Parquet split, e.g. DATA/test")
    e.add_argument("--json", help="also write the scores as JSON here (default: RUN/evaluation-<split>.json)")
    e.add_argument("--master", default=None, help="Spark master when not run by spark-submit (default local[*])")
    _remote_option(e, "evaluate")
    e.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)

    s = _command(
        sub, "predict", "score a Parquet dataset with a trained model: its columns plus prediction, probability"
    )
    s.add_argument("--model", required=True, help="run directory with model.npz and model.json")
    s.add_argument("--data", required=True, help="Parquet dataset with a binary 'image' column (784 bytes a row)")
    s.add_argument("--out", required=True, help="output Parquet directory (refused if it exists)")
    s.add_argument("--overwrite", action="store_true", help="replace an existing output once the new one is written")
    s.add_argument("--master", default=None, help="Spark master when not run by spark-submit (default local[*])")
    _remote_option(s, "score")
    s.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)


def _add_ingest(sub) -> None:
    i = _command(sub, "ingest", "verified IDX files -> partitioned Parquet (DATA/train, DATA/test)")
    i.add_argument(
        "--source", default=os.environ.get("MNIST_DIR"), help="directory with the IDX files (default: $MNIST_DIR)"
    )
    i.add_argument("--out", required=True, help="dataset directory DATA")
    i.add_argument("--partitions", type=int, default=2, help="part files per split (default 2)")
    i.add_argument("--seed", type=int, default=123, help="shuffle seed (default 123)")
    i.add_argument("--overwrite", action="store_true", help="replace an existing DATA")
    i.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)


def _add_train(sub) -> None:
    t = _command(sub, "train", "train on DATA/train, evaluate on DATA/test, write RUN/")
    t.add_argument("--data", required=True, help="dataset directory written by ingest")
    t.add_argument("--out", required=True, help="run directory RUN")
    t.add_argument("--config", help="TOML run config (default: the DL4J tutorial's)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one config key")
    t.add_argument("--resume", action="store_true", help="continue an interrupted run from its checkpoint")
    t.add_argument("--overwrite", action="store_true", help="replace an existing RUN when the new run finishes")
    t.add_argument("--master", default=None, help="Spark master when not run by spark-submit (default local[*])")
    _remote_option(t, "train")
    t.add_argument(
        "--mlflow", action="store_true", help="log the run to MLflow ($MLFLOW_TRACKING_URI, else ./mlruns.db)"
    )
    t.add_argument("--experiment", metavar="NAME", help="MLflow experiment (implies --mlflow; default dist-mnist)")
    t.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dist-mnist",
        description="DL4J's MNIST MLP, data-parallel on Spark.",
        epilog=f"`dist-mnist COMMAND --help` shows examples.\n{EXIT_CODES}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)

    d = _command(sub, "download", "fetch the four MNIST .gz files from the public mirrors, verified")
    d.add_argument("--out", required=True, help="directory for the .gz files")
    _add_ingest(sub)
    _add_train(sub)
    _scoring_commands(sub)

    r = _command(sub, "report", "PNG figures and an HTML page about a finished run, in RUN/report/")
    r.add_argument("run", metavar="RUN", help="run directory written by train")
    r.add_argument(
        "--data", help="dataset directory DATA for the misclassified digits (default: model.json's data.path)"
    )

    x = _command(sub, "export", "write a trained model as an ONNX graph (needs the onnx extra; no Spark)")
    x.add_argument("run", metavar="RUN", help="run directory with model.npz and model.json")
    x.add_argument("--onnx", required=True, metavar="OUT.onnx", help="the ONNX file to write (refused if it exists)")
    x.add_argument("--overwrite", action="store_true", help="replace an existing OUT.onnx")
    return p


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
        # the in-process transport needs no Spark: W workers one after another in this process
        spark = None if config.transport == "inprocess" else _session("dist-mnist-train", args.master, args.remote)
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
    args = _parser().parse_args(argv)
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
