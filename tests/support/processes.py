"""Child processes for the cluster, compose and Connect tests: an environment that leaks nothing
of the driver into a cluster, free loopback ports, process-group shutdown, drivers read as they run.

Every process is started in its own session (process group), so stopping the
group also stops what it spawned: a worker's executors, a driver's JVM and Python.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

LOOPBACK = "127.0.0.1"


def free_ports(n: int) -> list[int]:
    """n distinct free TCP ports on loopback (all sockets held open until all are chosen)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((LOOPBACK, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def clean_env(**extra: str) -> dict[str, str]:
    """os.environ without settings that would leak the driver's packages or config into the cluster."""
    # SPARK_CONF_DIR too (make exports it): these tests read Spark's own logs at its default level
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "SPARK_AUTH_SECRET", "SPARK_CONF_DIR")
    }
    env.update(extra)
    return env


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, or a note that it is missing."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else: not ours to wait for
        return False
    return True


def _signal_group(proc: subprocess.Popen, sig: int, timeout: float) -> bool:
    """Send sig to proc's process group; True once the group is gone within timeout."""
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while True:
        proc.poll()  # reap the leader: a zombie leader would keep its group alive
        if not _group_alive(proc.pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM the process group of proc (started with start_new_session), SIGKILL it after grace seconds."""
    if not _signal_group(proc, signal.SIGTERM, grace):
        _signal_group(proc, signal.SIGKILL, 5.0)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


class Driver:
    """A running spark-submit whose merged stdout/stderr is read line by line as it arrives."""

    def __init__(self, argv: list[str], log: Path, env: dict[str, str], cwd: Path):
        self.argv, self.log = argv, log
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        with open(self.log, "w") as out:
            for line in self.proc.stdout:
                out.write(line)
                out.flush()
                with self._cond:
                    self.lines.append(line.rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    @property
    def output(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def wait_for_line(self, pattern: str, timeout: float, accept=lambda m: True) -> re.Match:
        """The first output line matching pattern (and accept); fails if the driver ends first."""
        regex, seen, deadline = re.compile(pattern), 0, time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    m = regex.search(line)
                    if m and accept(m):
                        return m
                seen = len(self.lines)
                if not self._reader.is_alive():
                    raise AssertionError(
                        f"driver exited ({self.proc.poll()}) before a line matching {pattern!r}:\n{self.tail()}"
                    )
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"no line matching {pattern!r} within {timeout:.0f}s:\n{self.tail()}")
                self._cond.wait(min(remaining, 1.0))

    def wait(self, timeout: float) -> int:
        """The exit status; on timeout the driver's process group is stopped and the test fails."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(
                f"spark-submit still running after {timeout:.0f}s; stopped it:\n{self.tail()}"
            ) from None
        self._reader.join(timeout=10)
        return rc

    def tail(self, lines: int = 40) -> str:
        """The last output lines."""
        with self._cond:
            return "\n".join(self.lines[-lines:])

    def stop(self) -> None:
        """Stop the driver and its Python/JVM children."""
        stop_group(self.proc, grace=5.0)
