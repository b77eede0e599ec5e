"""The `dist-mnist` command's arguments: its subcommands, their options and --help examples."""

from __future__ import annotations

import argparse
import os

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
    "connect-server": [
        "dist-mnist connect-server start",
        "dist-mnist connect-server start --master spark://HOST:7077 --host 0.0.0.0 --port 15002",
        "dist-mnist connect-server stop",
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


def _add_connect_server(sub) -> None:
    c = _command(sub, "connect-server", "start a Spark Connect server for dist-mnist (returns once it accepts clients)")
    c.add_argument("action", choices=("start", "stop"), help="start a server, or stop the one started before")
    c.add_argument("--master", default="local[*]", help="the server's Spark master (default local[*])")
    c.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this host only)")
    c.add_argument("--port", type=int, default=15002, help="gRPC port (default 15002, Spark Connect's)")
    c.add_argument("--state", help="directory for its pid and log (default ~/.local/state/dist-mnist/connect-PORT)")
    c.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for it to accept clients (180)")


def parser() -> argparse.ArgumentParser:
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
    _add_connect_server(sub)
    return p
