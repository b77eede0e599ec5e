"""`dist-mnist connect-server start|stop`: a Spark Connect server for this project, waited for.

start launches Spark's SparkConnectServer (spark-submit --class ..., from the installed pyspark)
in a session of its own, with the project's quiet logging, its pid and log in a state
directory, and returns once the server says it accepts clients (one line: its sc:// URL),
or fails in one line with its log's last line. stop ends the server that start left there.
On a local master its executors run this interpreter (with this environment's packages).
"""

from __future__ import annotations

import errno
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from dist_mnist.hints import Log
from dist_mnist.spark.session import is_local_master

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
READY = re.compile(r"Spark Connect server started at: \S+?:(\d+)")
PID_FILE, LOG_FILE = "server.pid", "server.log"
PROJECT_CONF = Path(__file__).resolve().parents[2] / "conf"


@dataclass(frozen=True)
class Server:
    """A server start() waited for: its URL, process id and log."""

    url: str
    pid: int
    log: Path


def default_state(port: int) -> Path:
    """Where start() keeps the pid and log of the server on `port` ($XDG_STATE_HOME or ~/.local/state)."""
    root = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(root) / "dist-mnist" / f"connect-{port}"


def _conf_dir(state: Path) -> Path:
    """The server's SPARK_CONF_DIR: the project's log4j2 (console at WARN) with the server's
    readiness line at INFO, and its spark-defaults.conf."""
    conf = state / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    log4j = (PROJECT_CONF / "log4j2.properties").read_text() if (PROJECT_CONF / "log4j2.properties").is_file() else ""
    log4j += f"\nlogger.connectserver.name = {SERVER_CLASS}\nlogger.connectserver.level = info\n"
    (conf / "log4j2.properties").write_text(log4j)
    defaults = PROJECT_CONF / "spark-defaults.conf"
    (conf / "spark-defaults.conf").write_text(defaults.read_text() if defaults.is_file() else "")
    return conf


def running_pid(state: Path) -> int | None:
    """The pid of the server start() left in `state`, if that process still runs it."""
    try:
        pid = int((state / PID_FILE).read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if SERVER_CLASS.encode() in cmdline else None


def _check_port(host: str, port: int) -> None:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ValueError(f"--port {port}: {host}:{port} is in use; choose another --port") from None
            raise ValueError(f"--host {host}: cannot listen there ({e.strerror})") from None


def argv(master: str, host: str, port: int, conf: dict[str, str]) -> list[str]:
    """spark-submit of SparkConnectServer from the installed pyspark."""
    import pyspark

    settings = {
        "spark.connect.grpc.binding.address": host,
        "spark.connect.grpc.binding.port": str(port),
        "spark.ui.showConsoleProgress": "false",
        **({"spark.pyspark.python": sys.executable} if is_local_master(master) else {}),
        **conf,
    }
    out = [str(Path(pyspark.__file__).parent / "bin" / "spark-submit"), "--class", SERVER_CLASS]
    out += ["--name", "dist-mnist-connect", "--master", master]
    for key, value in settings.items():
        out += ["--conf", f"{key}={value}"]
    return out


def start(
    master: str = "local[*]",
    host: str = "127.0.0.1",
    port: int = 15002,
    state: Path | None = None,
    timeout: float = 180.0,
    conf: dict[str, str] | None = None,
) -> Server:
    """Start a server and wait until it accepts clients (RuntimeError, in one line, if it does not)."""
    state = state or default_state(port)
    pid = running_pid(state)
    if pid is not None:
        raise ValueError(f"a Spark Connect server from {state} is already running (pid {pid}); stop it first")
    _check_port(host, port)
    state.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
    env["SPARK_CONF_DIR"] = str(_conf_dir(state))
    if is_local_master(master):
        env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # the server's Python workers: spark-submit gives spark.pyspark.python to Python applications
    # only, and this one is Scala's, so it goes in the environment that the server's JVM reads
    python = (conf or {}).get("spark.pyspark.python") or (sys.executable if is_local_master(master) else None)
    if python:
        env["PYSPARK_PYTHON"] = python
    log = state / LOG_FILE
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            argv(master, host, port, conf or {}),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # stop() ends its whole group; a Ctrl-C here does not reach it
        )
    (state / PID_FILE).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = READY.search(log.read_text(errors="replace"))
        if found:
            shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
            return Server(f"sc://{shown}:{found[1]}", proc.pid, log)
        if proc.poll() is not None:
            (state / PID_FILE).unlink(missing_ok=True)
            raise RuntimeError(f"the Spark Connect server exited with status {proc.returncode}: {last_line(log)}")
        time.sleep(0.2)
    stop(state)
    raise RuntimeError(f"the Spark Connect server did not accept clients within {timeout:g} s: {last_line(log)}")


def last_line(log: Path) -> str:
    """The last error-looking line of a server's log (else its last line), and where the log is."""
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line for line in lines if "ERROR" in line or "Exception" in line]
    return f"{(errors or lines or ['(nothing logged)'])[-1].strip()[:300]} (log: {log})"


def stop(state: Path, grace: float = 30.0, log: Log = print) -> bool:
    """Stop the server start() left in `state` (SIGTERM to its group, SIGKILL after `grace` s);
    whether one was running."""
    pid = running_pid(state)
    (state / PID_FILE).unlink(missing_ok=True)
    if pid is None:
        return False
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.2)
    log(f"warning: the Spark Connect server (pid {pid}) did not stop")
    return True
