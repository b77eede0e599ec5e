"""A real Spark standalone cluster on 127.0.0.1, started with docker/spark-node.sh."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from ..support import REPO
from ..support.processes import LOOPBACK, clean_env, free_ports, stop_group, tail

NODE_SCRIPT = REPO / "docker" / "spark-node.sh"


def spark_home() -> Path:
    """The pip-installed pyspark, which is a whole Spark: the driver and the daemons match."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        raise RuntimeError("pyspark is not installed in this interpreter (help: pip install pyspark)")
    return Path(spec.origin).parent


def driver_env() -> dict[str, str]:
    """The environment for spark-submit and other driver-side commands: this pyspark, on loopback."""
    # An inherited SPARK_HOME would make pyspark's spark-submit run another Spark install.
    return clean_env(SPARK_HOME=str(spark_home()), SPARK_LOCAL_IP=LOOPBACK)


def submit_argv(
    master: str,
    worker_python: Path,
    local_dir: Path,
    secret: str | None = None,
    extra_conf: dict[str, str] | None = None,
) -> list[str]:
    """spark-submit and its options for a loopback run; append --py-files, the script and its args."""
    conf = {
        "spark.pyspark.python": str(worker_python),  # executors: the Python that lacks dist_mnist
        "spark.pyspark.driver.python": sys.executable,  # driver: this venv (else `python3` on PATH)
        "spark.driver.host": LOOPBACK,
        "spark.driver.bindAddress": LOOPBACK,
        "spark.local.dir": str(local_dir),
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
    }
    if master.startswith("spark://"):
        conf.update(
            {
                "spark.executor.memory": "1g",
                # Use both 1-core workers from the first task: wait (bounded) until both executors
                # registered; the ratio only counts against an explicit spark.cores.max.
                "spark.cores.max": "2",
                "spark.scheduler.minRegisteredResourcesRatio": "1.0",
                "spark.scheduler.maxRegisteredResourcesWaitingTime": "60s",
            }
        )
    if secret is not None:
        conf.update({"spark.authenticate": "true", "spark.authenticate.secret": secret})
    conf.update(extra_conf or {})
    argv = [str(spark_home() / "bin" / "spark-submit"), "--master", master]
    for key, value in conf.items():
        argv += ["--conf", f"{key}={value}"]
    return argv


class Node:
    """One daemon started by spark-node.sh; its pid is the daemon JVM's (the script execs)."""

    def __init__(self, name: str, proc: subprocess.Popen, log: Path, rpc_port: int, ui_port: int):
        self.name, self.proc, self.log = name, proc, log
        self.rpc_port, self.ui_port = rpc_port, ui_port

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        """True while the JVM runs."""
        return self.proc.poll() is None

    def __repr__(self) -> str:
        return f"Node({self.name}, pid={self.pid}, rpc={self.rpc_port}, ui={self.ui_port})"


class Cluster:
    """One master and its workers on loopback, RPC authentication on, state under root."""

    def __init__(self, root: Path, secret: str, worker_cores: int = 1, worker_memory: str = "2g"):
        self.root, self.secret = root, secret
        self.worker_cores, self.worker_memory = worker_cores, worker_memory
        self.spark_home = spark_home()
        self.master: Node | None = None
        self.workers: list[Node] = []
        self.nodes: list[Node] = []  # every node ever started, for teardown
        (root / "conf").mkdir(parents=True, exist_ok=True)  # empty: no stray spark-defaults.conf
        self.env = clean_env(
            SPARK_HOME=str(self.spark_home),
            SPARK_CONF_DIR=str(root / "conf"),
            SPARK_LOCAL_IP=LOOPBACK,
            SPARK_AUTH_SECRET=secret,
            SPARK_LOG_DIR=str(self._dir("logs")),
            SPARK_PID_DIR=str(self._dir("pids")),
            TMPDIR=str(self._dir("tmp")),
            # Daemons only schedule: small heaps, and the C1 JIT alone spares the 2 cores.
            SPARK_DAEMON_MEMORY="512m",
            SPARK_DAEMON_JAVA_OPTS="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        )

    def _dir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def master_url(self) -> str:
        assert self.master is not None, "cluster not started"
        return f"spark://{LOOPBACK}:{self.master.rpc_port}"

    @property
    def master_ui(self) -> str:
        assert self.master is not None, "cluster not started"
        return f"http://{LOOPBACK}:{self.master.ui_port}"

    def _spawn(self, name: str, args: list[str], env: dict[str, str], rpc_port: int, ui_port: int) -> Node:
        log = self._dir("logs") / f"{name}.out"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [str(NODE_SCRIPT), *args],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node = Node(name, proc, log, rpc_port, ui_port)
        self.nodes.append(node)
        return node

    def start_master(self, timeout: float = 180.0) -> Node:
        """Start the master and wait until it is ALIVE."""
        rpc, ui = free_ports(2)
        env = dict(self.env, SPARK_MASTER_HOST=LOOPBACK, SPARK_MASTER_PORT=str(rpc), SPARK_MASTER_WEBUI_PORT=str(ui))
        self.master = self._spawn("master", ["master"], env, rpc, ui)
        self._wait(lambda s: s.get("status") == "ALIVE", "the master to come up", timeout)
        return self.master

    def start(self, n_workers: int = 2, timeout: float = 180.0) -> Cluster:
        """Start the master, then n_workers workers, and wait until all are ALIVE."""
        self.start_master(timeout)
        for _ in range(n_workers):
            self.start_worker(wait=False)  # boot together: JVM start-up dominates
        self.wait_for_workers(n_workers, timeout)
        return self

    def start_worker(self, wait: bool = True, timeout: float = 120.0) -> Node:
        """Start one more worker; with wait, return once the master lists it ALIVE."""
        rpc, ui = free_ports(2)
        name = f"worker-{sum(n.name.startswith('worker') for n in self.nodes) + 1}"
        env = dict(
            self.env,
            SPARK_WORKER_HOST=LOOPBACK,
            SPARK_WORKER_PORT=str(rpc),
            SPARK_WORKER_WEBUI_PORT=str(ui),
            SPARK_WORKER_CORES=str(self.worker_cores),
            SPARK_WORKER_MEMORY=self.worker_memory,
            SPARK_WORKER_DIR=str(self._dir(f"{name}/work")),
            SPARK_LOCAL_DIRS=str(self._dir(f"{name}/local")),
        )
        worker = self._spawn(name, ["worker", self.master_url], env, rpc, ui)
        self.workers.append(worker)
        if wait:
            self._wait(lambda s: rpc in self._alive_ports(s), f"{name} to register", timeout)
        return worker

    def kill_worker(self, worker: Node, sig: int = signal.SIGKILL) -> None:
        """Send sig to the Worker JVM alone (its executor notices and exits) and reap it."""
        os.kill(worker.pid, sig)
        worker.proc.wait(timeout=30)
        self.workers.remove(worker)

    def ensure_workers(self, n: int, timeout: float = 120.0) -> None:
        """Replace dead workers and stop extra ones, until exactly n are ALIVE."""
        if self.master is None or not self.master.alive():
            raise RuntimeError(f"the master is not running; its log:\n{tail(self.master.log) if self.master else ''}")
        self.workers = [w for w in self.workers if w.alive()]
        while len(self.workers) > n:
            stop_group(self.workers.pop().proc)
        while len(self.workers) < n:
            self.start_worker(wait=False)
        self.wait_for_workers(n, timeout)

    def status(self) -> dict:
        """The master web UI's JSON: workers (with state), apps, cores."""
        with urllib.request.urlopen(f"{self.master_ui}/json/", timeout=5) as resp:
            return json.load(resp)

    def app_ids(self) -> set[str]:
        """Ids of every application the master has seen, running or finished."""
        status = self.status()
        return {app["id"] for app in status["activeapps"] + status["completedapps"]}

    @staticmethod
    def worker_status(worker: Node) -> dict:
        """A worker web UI's JSON: its cores, memory and running executors."""
        with urllib.request.urlopen(f"http://{LOOPBACK}:{worker.ui_port}/json/", timeout=5) as resp:
            return json.load(resp)

    def alive_workers(self) -> list[dict]:
        """The master's entries for its ALIVE workers."""
        return [w for w in self.status()["workers"] if w["state"] == "ALIVE"]

    @staticmethod
    def _alive_ports(status: dict) -> set[int]:
        return {w["port"] for w in status.get("workers", []) if w["state"] == "ALIVE"}

    def wait_for_workers(self, n: int, timeout: float = 120.0) -> None:
        """Wait until the master lists exactly our n live workers as ALIVE."""

        def ready(s: dict) -> bool:
            return self._alive_ports(s) == {w.rpc_port for w in self.workers} and len(self.workers) == n

        self._wait(ready, f"{n} ALIVE workers", timeout)

    def _wait(self, ready, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer yet"
        while True:
            dead = [n for n in [self.master, *self.workers] if n is not None and not n.alive()]
            if dead:
                raise RuntimeError(
                    f"waiting for {what}: {dead[0]} exited with {dead[0].proc.returncode}\n" + self.log_tails()
                )
            try:
                status = self.status()
                if ready(status):
                    return
                last = f"alive workers {sorted(self._alive_ports(status))}"
            except (urllib.error.URLError, OSError, ValueError) as e:
                last = f"master UI: {e}"
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what} ({last})\n" + self.log_tails())
            time.sleep(0.5)

    def log_tails(self, lines: int = 25) -> str:
        """The end of every node's log, for failure messages."""
        return "\n".join(f"--- {n.name} (pid {n.pid}) {n.log}\n{tail(n.log, lines)}" for n in self.nodes)

    def stop(self) -> None:
        """Stop every node ever started, workers first, each by its own process group."""
        for node in reversed(self.nodes):
            stop_group(node.proc)
