"""What the executors need before a task of ours runs: this package, and a Python that can run it.

`prepare_executors` runs once per application, before anything is staged or trained: it ships
the package (spark.session.ship_package) and, on a cluster master, asks every executor it can
reach what its Python is and what it lacks (numpy, pyarrow, pyzmq with CURVE, the
driver's minor version). The question is a SQL script transform (`TRANSFORM ... USING`): the
executor's JVM runs the Python that PySpark would, with no Python worker in between, so a
Python that cannot even start a PySpark worker answers too, and nothing is retried or traced.
"""

from __future__ import annotations

import json
import re
import sys
from typing import TYPE_CHECKING

from dist_mnist.spark.session import is_connect, is_local_master, ship_package

if TYPE_CHECKING:
    from dist_mnist.hints import SparkSession

SAFE_PATH = re.compile(r"[\w./+-]+")  # an interpreter's path or name, safe in a shell inside a SQL string
NEEDED = ("numpy", "pyarrow", "zmq")  # what a task imports (numba is optional: NumPy's path, the same bits)
HELP = (
    "help: give every executor a Python with the project's packages: --conf spark.pyspark.python=PATH, "
    "an environment archive (--archives env.tar.gz#env --conf spark.pyspark.python=./env/bin/python), "
    "or the project's image (docker/Dockerfile)"
)
ASK = """
import importlib, json, socket, sys
sys.stdin.read()
out = {"host": socket.gethostname(), "python": sys.executable, "version": list(sys.version_info[:3]), "missing": []}
for name in NEEDED:
    try:
        module = importlib.import_module(name)
    except Exception as e:
        out["missing"].append(name if isinstance(e, ImportError) else f"{name} ({type(e).__name__})")
    else:
        if name == "zmq" and not module.has("curve"):
            out["missing"].append("pyzmq with CURVE (its libzmq has none)")
print(json.dumps(out))
"""


def prepare_executors(spark: SparkSession) -> None:
    """Ship the package, then refuse in one line executors that cannot run it (once per application;
    a local master's executors run this interpreter and are not asked)."""
    ship_package(spark)
    holder = spark if is_connect(spark) else spark.sparkContext
    if getattr(holder, "_dist_mnist_checked", False):
        return
    if is_connect(spark):  # the server's executors run the server's Python: a plain Python UDF asks them
        problem = connect_executor_problem(spark)
    elif is_local_master(spark.sparkContext.master or ""):
        problem = None
    else:
        sc = spark.sparkContext
        problem = executor_problem(spark, sc.pythonExec or "python3", max(1, sc.defaultParallelism))
    if problem:
        raise RuntimeError(problem)
    holder._dist_mnist_checked = True  # type: ignore[union-attr]  # a mark of our own on pyspark's object


def transform_sql(python: str, tasks: int) -> str:
    """The script transform that runs ASK with `python` in `tasks` tasks (no quote of any kind in
    the code: it travels as a list of byte values)."""
    code = ASK.replace("NEEDED", repr(NEEDED))
    command = f'{python} -c "exec(bytes({list(code.encode())}).decode())" 2>&1 || echo "exit status $?"'
    return f"SELECT TRANSFORM(id) USING '{command}' AS (line STRING) FROM range(0, {tasks}, 1, {tasks})"


def executor_problem(spark: SparkSession, python: str, tasks: int) -> str | None:
    """The first thing an executor's `python` lacks, as one line naming the host; None if none lacks anything."""
    if not SAFE_PATH.fullmatch(python):
        return None  # a path a shell in a SQL string cannot carry as it is: PySpark's own error will tell
    return problem_of([row["line"] for row in spark.sql(transform_sql(python, tasks)).collect()], python)


def ask(_):  # no type hints: pyspark's UDF would read them as a pandas UDF's
    """ASK's answer (a JSON line) from inside a Python worker (a UDF: no script, no stdin to read)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(ASK.replace("NEEDED", repr(NEEDED)).replace("sys.stdin.read()\n", ""), {"__name__": "ask"})
    return out.getvalue().strip()


def connect_executor_problem(spark: SparkSession) -> str | None:
    """executor_problem for a Connect session's server (whose Python the client cannot name)."""
    from pyspark.sql import functions as F

    try:
        lines = [row[0] for row in spark.range(1).select(F.udf(ask, "string")(F.lit(0))).collect()]
    except Exception as e:  # noqa: BLE001 - the worker could not even run the question: that is the answer
        said = next((line.strip() for line in str(e).splitlines() if "Error" in line), str(e).strip()[:200])
        return f"an executor of the Spark Connect server cannot run dist-mnist's tasks ({said[:300]}) ({HELP})"
    return problem_of(lines, "the server's Python")


def problem_of(lines: list[str], python: str) -> str | None:
    """The first problem the executors' answers to ASK tell, as one line; None if nothing lacks."""
    reports, other = [], []
    for line in lines:
        try:
            reports.append(json.loads(line))
        except ValueError:
            other.append(line.strip())
    driver = ".".join(map(str, sys.version_info[:3]))
    for r in reports:
        version = ".".join(map(str, r["version"]))
        where = f"on {r['host']}, {r['python']} (Python {version})"
        if r["missing"]:
            missing = ", ".join(r["missing"])
            return f"an executor cannot run dist-mnist's tasks: {where} cannot import {missing} ({HELP})"
        if tuple(r["version"][:2]) != sys.version_info[:2]:
            return (
                f"an executor cannot run dist-mnist's tasks: {where}, but the driver runs Python {driver} "
                f"and PySpark needs the same minor version on both ({HELP})"
            )
    if not reports:
        said = "; ".join(line for line in other if line)[:300] or "nothing"
        return f"an executor cannot run dist-mnist's tasks: {python} does not start there (it said: {said}) ({HELP})"
    return None
