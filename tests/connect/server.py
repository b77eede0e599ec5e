"""A Spark Connect server for the tests: `dist-mnist connect-server start`'s own code
(dist_mnist.spark.connect_server), on loopback, a free port, local[2] or a standalone master."""

from __future__ import annotations

import sys
from pathlib import Path

from dist_mnist.spark import connect_server


class ConnectServer:
    """A running server: `url` (sc://127.0.0.1:PORT), its state directory and log."""

    def __init__(self, server: connect_server.Server, state: Path):
        self.url, self.pid, self.log, self.state = server.url, server.pid, server.log, state
        self.port = int(server.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        connect_server.stop(self.state, grace=10.0)


def start(tmp: Path, master: str = "local[2]", timeout: float = 240.0, **conf: str) -> ConnectServer:
    """Start a server on a free port and wait until it accepts clients."""
    settings = {
        "spark.ui.enabled": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.memory": "1g",
        "spark.pyspark.python": sys.executable,
        **conf,
    }
    state = tmp / "connect-server"
    return ConnectServer(connect_server.start(master, "127.0.0.1", 0, state, timeout, settings), state)
