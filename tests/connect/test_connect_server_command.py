"""`dist-mnist connect-server start|stop`: returns once the server accepts clients, in one line;
refuses a second server on the same state or a taken port in one line; stop ends it."""

from __future__ import annotations

import re
import socket
import subprocess
import sys

import pytest

CLI = [sys.executable, "-m", "dist_mnist.cli", "connect-server"]
CLIENT = (
    "import sys; from pyspark.sql import SparkSession; "
    "s = SparkSession.builder.remote(sys.argv[1]).getOrCreate(); print(s.range(3).count())"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, check=False)


def test_start_returns_once_clients_are_accepted_and_stop_ends_it(tmp_path):
    pytest.importorskip("grpc", reason="Spark Connect needs pyspark's connect extra")
    port, state = _free_port(), tmp_path / "state"
    started = _cli("start", "--master", "local[1]", "--port", str(port), "--state", str(state))
    try:
        assert started.returncode == 0, started.stderr
        line = started.stdout.strip()
        ready = rf"Spark Connect server ready at sc://127\.0\.0\.1:{port} \(pid \d+, master local\[1\]; "
        assert re.fullmatch(
            ready + rf"log {state}/server\.log\); stop it with: dist-mnist connect-server stop --state {state}", line
        ), line
        url = f"sc://127.0.0.1:{port}"
        client = subprocess.run(
            [sys.executable, "-c", CLIENT, url], capture_output=True, text=True, timeout=120, check=False
        )
        assert client.stdout.strip() == "3", client.stderr[-2000:]  # at once: no polling of the port
        again = _cli("start", "--port", str(port), "--state", str(state))
        assert again.returncode == 2 and again.stderr.strip() == (
            f"dist-mnist connect-server: error: a Spark Connect server from {state} is already running "
            f"(pid {line.split('(pid ')[1].split(',')[0]}); stop it first"
        )
        taken = _cli("start", "--port", str(port), "--state", str(tmp_path / "other"))
        assert taken.returncode == 2 and taken.stderr.strip() == (
            f"dist-mnist connect-server: error: --port {port}: 127.0.0.1:{port} is in use; choose another --port"
        )
    finally:
        stopped = _cli("stop", "--state", str(state))
    assert stopped.returncode == 0 and stopped.stdout.strip() == f"stopped the Spark Connect server of {state}"
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # the port is free again: the server is gone
    assert _cli("stop", "--state", str(state)).stdout.strip() == f"no Spark Connect server ran from {state}"
