"""The Spark session a command makes: a classic one (its JVM started with a Ctrl-C that waits for
it) or a Spark Connect client; the executors prepared; stopped before the command exits."""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path

PROJECT_CONF = Path(__file__).resolve().parents[2] / "conf"
LOG_LEVEL_VAR = "DIST_MNIST_SPARK_LOG_LEVEL"  # read by conf/log4j2.properties and get_context
_SESSIONS: list = []  # the sessions this command made, stopped before it exits


def session(app: str, master: str | None, remote: str | None = None, before: str = "training started"):
    """A Spark Connect session at `remote` (sc://HOST:PORT), or a classic one on _context's SparkContext."""
    if remote:
        from dist_mnist.spark.session import connect_session

        if master:
            raise ValueError(
                "--master and --remote (or SPARK_REMOTE) exclude each other: the Connect server has its own"
            )
        spark = connect_session(remote, app)
        _SESSIONS.append(spark)  # this process's own client
    else:
        from pyspark import SparkContext
        from pyspark.sql import SparkSession

        ours = SparkContext._active_spark_context is None  # else the caller's (a notebook, a test): left running
        spark = SparkSession(context(app, master, before))
        if ours:
            _SESSIONS.append(spark)
    from dist_mnist.spark.executors import prepare_executors

    # the executors run this process's dist_mnist, whatever they have installed; on a cluster,
    # one line now if their Python cannot run it, before anything is staged or trained
    prepare_executors(spark)
    return spark


def context(app: str, master: str | None, before: str = "Spark started"):
    """The SparkContext; a Ctrl-C while it starts waits for the JVM, then raises
    Interrupted("interrupted before {before}; nothing was written")."""
    from dist_mnist.driver.progress import GracefulStop, nothing_written
    from dist_mnist.spark.session import bind_to_loopback_if_local, check_environment, get_context, set_jvm_log_level

    # Py4J logs a traceback of its own when Ctrl-C lands inside a call to the JVM; the
    # interruption is reported once, in one line, by main().
    logging.getLogger("py4j").setLevel(logging.CRITICAL)

    if "SPARK_CONF_DIR" not in os.environ and PROJECT_CONF.is_dir():
        os.environ["SPARK_CONF_DIR"] = str(PROJECT_CONF)  # conf/spark-defaults.conf, conf/log4j2.properties
    bind_to_loopback_if_local(master)  # before set_jvm_log_level starts the JVM
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
                raise nothing_written(before) from None
            raise
    if stop.requested:
        raise nothing_written(before)
    return sc


def stop_sessions() -> None:
    """Stop the sessions this command made, before the interpreter exits: the application ends in
    order (executors released, then the cluster told), not in the JVM's shutdown hooks, where a
    local-cluster master would relaunch executors as they go and log each failure."""
    from dist_mnist.spark.session import stop_session

    while _SESSIONS:
        spark = _SESSIONS.pop()
        with contextlib.suppress(Exception, KeyboardInterrupt):  # the command's outcome is already decided
            stop_session(spark)
