"""A Spark Connect server for the tests: its own JVM (spark-submit of SparkConnectServer) from
the installed pyspark, on loopback, a free port, local[2] or a standalone master; ready when
it logs the port it listens on; stopped by pid."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..cluster.processes import stop_group, tail

REPO = Path(__file__).resolve().parents[2]
READY = re.compile(r"Spark Connect server started at: \S+?:(\d+)")


def conf_dir(where: Path) -> Path:
    """The project's conf/ (quiet log4j2), plus the server's readiness line at INFO."""
    where.mkdir(parents=True, exist_ok=True)
    text = (REPO / "conf" / "log4j2.properties").read_text()
    text += (
        "\nlogger.connectserver.name = org.apache.spark.sql.connect.service.SparkConnectServer\n"
        "logger.connectserver.level = info\n"
    )
    (where / "log4j2.properties").write_text(text)
    shutil.copy(REPO / "conf" / "spark-defaults.conf", where / "spark-defaults.conf")
    return where


class ConnectServer:
    """A running server: `url` (sc://127.0.0.1:PORT), its process and log."""

    def __init__(self, proc: subprocess.Popen, log: Path, port: int):
        self.proc, self.log, self.port = proc, log, port
        self.url = f"sc://127.0.0.1:{port}"

    def stop(self) -> None:
        stop_group(self.proc)


def start(tmp: Path, master: str = "local[2]", timeout: float = 240.0, **conf: str) -> ConnectServer:
    """Start a server and wait until it says which port it listens on."""
    import pyspark

    spark_home = Path(pyspark.__file__).parent
    settings = {
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": "0",
        "spark.ui.enabled": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.memory": "1g",
        "spark.pyspark.python": sys.executable,
        **conf,
    }
    argv = [str(spark_home / "bin" / "spark-submit"), "--class", "org.apache.spark.sql.connect.service.SparkConnectServer",
            "--name", "dist-mnist-tests-connect", "--master", master]
    for key, value in settings.items():
        argv += ["--conf", f"{key}={value}"]
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED")}
    env.update(SPARK_CONF_DIR=str(conf_dir(tmp / "conf")), SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable)
    log = tmp / "connect-server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = READY.search(log.read_text(errors="replace"))
        if found:
            return ConnectServer(proc, log, int(found[1]))
        if proc.poll() is not None:
            raise RuntimeError(f"the Connect server exited with {proc.returncode}:\n{tail(log)}")
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGTERM)
    raise RuntimeError(f"the Connect server did not start in {timeout:g} s:\n{tail(log)}")
