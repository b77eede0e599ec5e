"""What the transports need of a Spark session, classic or Spark Connect, behind one small class.

A classic session has a SparkContext in this process (a JVM beside the driver's Python); a
Connect session has only a gRPC channel to a server, no SparkContext, no RDDs. Both run
DataFrame jobs, which is what the transports use for their stages: `spark.range(W,
numPartitions=W).mapInArrow(fn, schema, barrier=...)`. What differs is here: how a
background job is cancelled, what is known of the free task slots, and the address the
executors reach the driver's loop at (the driver under classic, this client under Connect).
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import time
import urllib.request
from typing import TYPE_CHECKING

from dist_mnist.hints import Log
from dist_mnist.spark.session import is_connect, is_local_master, server_answers
from dist_mnist.transport import ServerLost

if TYPE_CHECKING:
    from dist_mnist.hints import SparkSession

ENCRYPTION_SETTINGS = ("spark.network.crypto.enabled", "spark.ssl.enabled", "spark.io.encryption.enabled")


class Cluster:
    """A session's facts and background jobs, the same calls under classic and Connect."""

    def __init__(self, spark: SparkSession, host: str = ""):
        self.spark = spark
        self.connect = is_connect(spark)
        self.host_setting = host  # channel_host: the address the executors reach this process at
        self.lost = False  # a Connect session's server stopped answering: nothing more is asked of it

    def conf(self, key: str, default: str = "") -> str:
        """A setting of the application (static ones too); `default` when unset."""
        # classic: the SparkContext's conf, which the session's would read only after starting the
        # SQL engine (seconds, on a run that never needs it)
        value = self.spark.conf.get(key, None) if self.connect else self.spark.sparkContext.getConf().get(key, None)
        return default if value is None else str(value)

    @property
    def master(self) -> str:
        return self.conf("spark.master", "?")

    def all_local(self) -> bool:
        """Whether every executor is this process's own JVM (local or local[N], classic): not
        local-cluster[...], whose executors are JVMs of their own, reached as a cluster's are."""
        return not self.connect and is_local_master(self.master)

    def task_cpus(self) -> int:
        value = self.conf("spark.task.cpus", "1")
        return max(1, int(value)) if value.isdigit() else 1

    def most_slots(self) -> int | None:
        """The task slots this application can ever have at once, where the settings or the
        cluster manager say (local-cluster[N,C,M], spark.cores.max, a fixed executor count, a
        standalone master's alive workers); None where nothing says."""
        if self.connect or self.all_local():
            return None  # Connect: unknown; a local master's free_slots() is already all of them
        cpus, known = self.task_cpus(), []
        grid = re.fullmatch(r"local-cluster\[(\d+),(\d+),(\d+)\]", self.master.replace(" ", ""))
        if grid:
            known.append(int(grid[1]) * (int(grid[2]) // cpus))
        if self.conf("spark.cores.max").isdigit():
            known.append(int(self.conf("spark.cores.max")) // cpus)
        instances, cores = self.conf("spark.executor.instances"), self.conf("spark.executor.cores")
        if instances.isdigit() and cores.isdigit() and not self.dynamic_allocation():
            known.append(int(instances) * (int(cores) // cpus))
        if self.master.startswith("spark://"):
            alive = standalone_cores(self.master)
            if alive is not None:
                known.append(alive // cpus)
        return min(known) if known else None

    def wait_for_slots(self, workers: int, seconds: float, log: Log) -> int | None:
        """Wait (at most `seconds`) until `workers` task slots are registered; the free slots then.

        A fresh cluster's executors register some seconds after the application starts, and a
        lost executor's replacement some seconds after the loss: choosing before they have
        would take the slow transport for the whole run. No wait where the session cannot tell
        (Connect), where the slots are there, or where the cluster can never offer them.
        """
        slots = self.free_slots()
        if slots is None or slots >= workers or self.all_local():  # local: free_slots() is all there is
            return slots
        most = self.most_slots()
        if most is not None and most < workers:
            return slots
        log(
            f"waiting for executors: {slots} of {workers} task slots registered "
            f"(up to {seconds:g} s; --set slot_wait=SECONDS)"
        )
        deadline = time.monotonic() + seconds
        while slots < workers and time.monotonic() < deadline:
            time.sleep(0.2)
            slots = self.free_slots() or 0
        return slots

    def encryption_asked(self) -> list[str]:
        """The settings by which the cluster asks for encrypted traffic."""
        return [k for k in ENCRYPTION_SETTINGS if self.conf(k, "false").strip().lower() == "true"]

    def dynamic_allocation(self) -> bool:
        return self.conf("spark.dynamicAllocation.enabled", "false").strip().lower() == "true"

    def free_slots(self) -> int | None:
        """Tasks the application can run at once now, or None where the session cannot tell (Connect)."""
        if self.connect:
            return None
        jsc = self.spark.sparkContext._jsc.sc()
        return int(jsc.maxNumConcurrentTasks(jsc.resourceProfileManager().defaultResourceProfile()))

    def driver_host(self) -> str:
        """Where the executors reach this process: channel_host if set; classic, spark.driver.host;
        Connect, this client's address on its route to the server."""
        if self.host_setting:
            return self.host_setting
        if not self.connect:
            return self.conf("spark.driver.host", "127.0.0.1")
        return route_address(self.spark.client.host.strip("[]"))  # the Connect server's host

    def server_answers(self, seconds: float = 2.0) -> bool:
        """Whether the session's server accepts calls now (classic: always)."""
        return not self.connect or server_answers(self.spark, seconds)

    def check_server(self, timeout: float) -> None:
        """ServerLost once a Connect session's server has not answered for `timeout` seconds
        (called now and then while a run waits on it; nothing under classic)."""
        if self.server_answers():
            self._unanswered_since: float | None = None
            return
        now = time.monotonic()
        since = getattr(self, "_unanswered_since", None) or now
        self._unanswered_since = since
        if now - since >= timeout:
            self.lost = True
            raise ServerLost(f"the Spark Connect server at {self.server_url()} stopped answering ({timeout:g} s)")

    def server_url(self) -> str:
        """sc://HOST:PORT of a Connect session's server, as connect_session was given it (for messages)."""
        return getattr(self.spark, "_dist_mnist_url", None) or f"sc://{self.spark.client.host}"

    def run_tagged(self, tag: str, action) -> None:
        """Run `action()` (a DataFrame action) in this thread under `tag`, so cancel(tag) stops it."""
        if self.connect:
            self.spark.addTag(tag)
            try:
                action()
            finally:
                self.spark.removeTag(tag)
        else:  # classic tags live per thread (SPARK-50366): a job group can be cancelled from another
            sc = self.spark.sparkContext
            sc.setJobGroup(tag, "dist-mnist: persistent round transport", interruptOnCancel=True)
            action()

    def thread(self, target, name: str):
        """A daemon thread for a background job, carrying this thread's Spark properties."""
        from pyspark import InheritableThread

        extra = {"session": self.spark} if self.connect else {}
        return InheritableThread(target=target, daemon=True, name=name, **extra)

    def cancel(self, tag: str) -> None:
        """Cancel the jobs run under `tag` (from any thread); nothing where the server is lost."""
        if self.lost:
            return
        if self.connect:
            with contextlib.suppress(Exception):  # best effort: the server may be going
                self.spark.interruptTag(tag)
        else:
            self.spark.sparkContext.cancelJobGroup(tag)


def standalone_cores(master: str, port: int = 8080, timeout: float = 2.0) -> int | None:
    """The cores of a standalone master's alive workers, from its web UI's JSON (spark://HOST:...,
    the UI on `port`); None where it does not answer (another UI port, a UI turned off)."""
    host = master.removeprefix("spark://").split(",")[0].rsplit(":", 1)[0]
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/json/", timeout=timeout) as r:
            state = json.load(r)
        return sum(int(w.get("cores", 0)) for w in state.get("workers", []) if w.get("state") == "ALIVE")
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def route_address(host: str) -> str:
    """This machine's address on its route to `host` (a UDP socket's connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((socket.gethostbyname(host), 9))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
