"""What the transports need of a Spark session, classic or Spark Connect, behind one small class.

A classic session has a SparkContext in this process (a JVM beside the driver's Python); a
Connect session has only a gRPC channel to a server, no SparkContext, no RDDs. Both run
DataFrame jobs, which is what the transports use for their stages: `spark.range(W,
numPartitions=W).mapInArrow(fn, schema, barrier=...)`. What differs is here: how a
background job is cancelled, what is known of the free task slots, and the address the
executors reach the driver's loop at (the driver under classic, this client under Connect).
"""

from __future__ import annotations

import socket

from dist_mnist.spark.session import is_connect

ENCRYPTION_SETTINGS = ("spark.network.crypto.enabled", "spark.ssl.enabled", "spark.io.encryption.enabled")


class Cluster:
    """A session's facts and background jobs, the same calls under classic and Connect."""

    def __init__(self, spark, host: str = ""):
        self.spark = spark
        self.connect = is_connect(spark)
        self.host_setting = host  # transport_host: the address the executors reach this process at

    def conf(self, key: str, default: str = "") -> str:
        """A setting of the application (static ones too); `default` when unset."""
        value = self.spark.conf.get(key, None)
        return default if value is None else str(value)

    @property
    def master(self) -> str:
        return self.conf("spark.master", "?")

    def all_local(self) -> bool:
        """Whether every executor is a process of this user on this host (a local master, classic)."""
        return not self.connect and self.master.startswith("local")

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
        """Where the executors reach this process: transport_host if set; classic, spark.driver.host;
        Connect, this client's address on its route to the server."""
        if self.host_setting:
            return self.host_setting
        if not self.connect:
            return self.conf("spark.driver.host", "127.0.0.1")
        return route_address(self.spark.client.host.strip("[]"))  # the Connect server's host

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
        """Cancel the jobs run under `tag` (from any thread)."""
        if self.connect:
            self.spark.interruptTag(tag)
        else:
            self.spark.sparkContext.cancelJobGroup(tag)


def route_address(host: str) -> str:
    """This machine's address on its route to `host` (a UDP socket's connect sends nothing)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((socket.gethostbyname(host), 9))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"
