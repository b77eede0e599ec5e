"""The `dist-mnist` command: download, ingest, train, evaluate, predict, report, export.

Exit status: 0 success, 2 a usage or input error, 1 a failure (a broken environment, a
failed download, a diverged run; a bug also exits 1, with its traceback), 130 Ctrl-C.
User mistakes and failures end in one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path
from typing import NoReturn

from dist_mnist.cli.parser import parser
from dist_mnist.cli.spark import LOG_LEVEL_VAR, session, stop_sessions

EXIT_FAILURE, EXIT_USER_ERROR, EXIT_INTERRUPTED = 1, 2, 130


def _ingest(args: argparse.Namespace) -> None:
    from dist_mnist.data.ingest import ingest

    if not args.source:
        raise ValueError("ingest needs --source DIR (or MNIST_DIR) with the four MNIST IDX files")
    meta = ingest(args.source, args.out, args.partitions, args.seed, args.overwrite)
    train, test = (meta["splits"][split]["rows"] for split in ("train", "test"))
    print(
        f"ingested {train:,} training rows and {test:,} test rows into {args.out} "
        f"({args.partitions} part files a split, shuffled with seed {args.seed})"
    )


def _train(args: argparse.Namespace) -> None:
    from dist_mnist.config import load_config
    from dist_mnist.driver import prepare, train_prepared
    from dist_mnist.driver.runs import EVALUATION_TXT

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
        spark = None if config.transport == "inprocess" else session("dist-mnist-train", args.master, args.remote)
        if spark is not None:
            run.phases.mark("spark_start")  # the JVM (or the Connect client) and the session, a phase of its own
        result = train_prepared(spark, run, tracker=tracker)
    stats = result.stats()
    if stats is not None:
        print("\n".join(line for line in stats.splitlines() if not line.startswith("Examples labeled as")).strip())
        print(f"\nDL4J's full stats(), with its 'Examples labeled as ...' lines: {Path(args.out, EVALUATION_TXT)}")
    print(f"model written to {args.out} (model.npz, model.json)")


def _export(args: argparse.Namespace) -> None:
    from dist_mnist.outputs.export import export_onnx

    model = export_onnx(args.run, args.onnx, args.overwrite)
    props = {p.key: p.value for p in model.metadata_props}
    print(
        f"wrote {args.onnx}: MLP {props['layer_sizes']}, feature_kind {props['feature_kind']}, "
        f"inputs 'features', outputs 'probability', 'prediction', 'rawPrediction'"
    )


def _evaluate(args: argparse.Namespace) -> None:
    """dist-mnist evaluate: classic or, with --remote, from a Spark Connect client."""
    from dist_mnist.data.splits import describe_split
    from dist_mnist.files.atomic import recover_if_idle
    from dist_mnist.files.model import load_model, model_files
    from dist_mnist.files.paths import refuse_overlap
    from dist_mnist.spark.evaluate import evaluate_model, evaluation_json

    for path in (args.data, Path(args.data).parent):  # a split, or the dataset a killed ingest was replacing
        recover_if_idle(path)
    load_model(args.model)  # a bad model, --json or split fails before Spark starts
    if args.json:
        if Path(args.json).is_dir():
            raise ValueError(f"{args.json}: is a directory (--json takes a file name)")
        refuse_overlap(args.json, "--json", {"--data": args.data, **model_files(args.model)})
        if not Path(args.json).resolve().parent.is_dir():
            raise FileNotFoundError(f"{Path(args.json).parent}: no such directory (for --json {args.json})")
    describe_split(args.data)
    spark = session("dist-mnist-evaluate", args.master, args.remote, "Spark started")
    print(evaluate_model(spark, args.model, args.data, args.json))
    print(f"scores written to {args.json or evaluation_json(args.model, args.data)}")


def _predict(args: argparse.Namespace) -> None:
    """dist-mnist predict: classic or, with --remote, from a Spark Connect client."""
    from dist_mnist.files.model import load_model, model_files
    from dist_mnist.files.paths import refuse_overlap
    from dist_mnist.spark.predict import check_input, predict_to_parquet

    load_model(args.model)  # a bad model or input fails before Spark starts
    refuse_overlap(args.out, "--out", {"--data": args.data, **model_files(args.model)})
    if Path(args.out).exists() and not args.overwrite:
        raise FileExistsError(f"{args.out}: already exists (pass --overwrite to replace it)")
    check_input(args.data)
    spark = session("dist-mnist-predict", args.master, args.remote, "Spark started")
    written = predict_to_parquet(spark, args.model, args.data, args.out, args.overwrite)
    print(f"wrote {written} predictions to {args.out}")


def _connect_server(args: argparse.Namespace) -> None:
    from dist_mnist.spark import connect_server

    state = Path(args.state) if args.state else connect_server.default_state(args.port)
    if args.action == "stop":
        stopped = connect_server.stop(state)
        print(
            f"stopped the Spark Connect server of {state}" if stopped else f"no Spark Connect server ran from {state}"
        )
        return
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must be a port number, got {args.port}")
    server = connect_server.start(args.master, args.host, args.port, state, args.timeout)
    print(
        f"Spark Connect server ready at {server.url} (pid {server.pid}, master {args.master}; log {server.log}); "
        f"stop it with: dist-mnist connect-server stop{'' if args.state is None else f' --state {args.state}'}"
        + ("" if args.port == 15002 or args.state else f" --port {args.port}")
    )


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
        from dist_mnist.outputs.report import write_report

        write_report(args.run, args.data)
    elif args.command == "export":
        _export(args)
    elif args.command == "connect-server":
        _connect_server(args)
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


def _train_interrupted(out: str) -> KeyboardInterrupt:
    """What a Ctrl-C that train() did not word itself (while importing or checking) left behind."""
    from dist_mnist.driver.checkpoint import CHECKPOINT_NPZ
    from dist_mnist.driver.progress import Interrupted, nothing_written
    from dist_mnist.driver.runs import partial_dir

    partial = partial_dir(Path(out))
    if (partial / CHECKPOINT_NPZ).exists():
        return Interrupted(f"interrupted; the last checkpoint is in {partial} (resume with --resume)", partial)
    return nothing_written("training started")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script and the jobs/ scripts."""
    args = parser().parse_args(argv)
    try:
        return _main(args)
    finally:
        stop_sessions()


def run(argv: list[str] | None = None) -> NoReturn:
    """main(), then exit with its status: the console script's and the jobs' entry point. A Ctrl-C
    while the interpreter exits (pyspark's at-exit handlers) is one line too."""
    status = main(argv)
    signal.signal(signal.SIGINT, _interrupted_while_exiting)
    sys.exit(status)


def _interrupted_while_exiting(signum, frame) -> None:
    """A Ctrl-C once the command is done (the interpreter's exit, pyspark's at-exit handlers):
    one line, not a KeyboardInterrupt in whatever cleanup it lands in."""
    sys.stderr.write("interrupted while exiting; the command had finished\n")
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def _main(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except BaseException as e:  # sorted into user errors (one line) and bugs (re-raised) below
        if isinstance(e, SystemExit):
            raise
        from dist_mnist.driver.progress import Interrupted, close_bars

        close_bars()  # a progress bar left on the terminal would run into the error's line
        if isinstance(e, KeyboardInterrupt) and not isinstance(e, Interrupted) and args.command == "train":
            e = _train_interrupted(args.out)  # a Ctrl-C while importing or checking
        msg = user_message(e)
        if msg is None:
            raise
        print(f"dist-mnist {args.command}: error: {msg}", file=sys.stderr)
        return exit_code(e)


if __name__ == "__main__":
    run()
