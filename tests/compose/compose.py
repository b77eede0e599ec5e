"""The docker-compose mini-cluster on host networking, driven with docker-compose 1.x and docker.

Every container runs with network_mode: host and binds 127.0.0.1 on ports
chosen free here; the project name is unique to the session, so its
containers and volumes are found by compose's project label.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import time
import urllib.request
from pathlib import Path

from ..support import REPO
from ..support.processes import LOOPBACK, Driver, clean_env, free_ports

COMPOSE_FILES = (REPO / "docker" / "docker-compose.yml", REPO / "docker" / "docker-compose.host.yml")
BUILD_SCRIPT = REPO / "docker" / "build-offline.sh"
SPARK_VERSION = "4.0.1"  # the compose file's default: its image tag and pyspark pin
IMAGE = f"dist-mnist-spark:{SPARK_VERSION}"
DAEMONS = ("spark-master", "spark-worker-1", "spark-worker-2")
PROJECT_LABEL = "com.docker.compose.project"

# Figures for the end of the pytest run (see conftest.pytest_terminal_summary).
FIGURES: dict[str, str] = {}


def run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a docker or docker-compose command; fail with its output when it fails."""
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or clean_env(),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv[:4])} ... failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    return result


def engine_problem() -> str | None:
    """Why the compose tests cannot run here, or None when docker, docker-compose and an engine are there."""
    for tool, package in (("docker", "docker.io"), ("docker-compose", "docker-compose")):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install {package})"
    try:
        result = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=60,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return "the Docker engine did not answer `docker info` within 60 s"
    if result.returncode != 0 or not result.stdout.strip():
        error = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"no Docker engine answers ({error}); start dockerd (as .ci/run does) or set DOCKER_HOST"
    return None


def build_image() -> str:
    """docker/build-offline.sh IMAGE (cached by docker and the script); the image's tag."""
    start = time.monotonic()
    result = run([str(BUILD_SCRIPT), IMAGE], timeout=1500, env=clean_env(SPARK_VERSION=SPARK_VERSION))
    FIGURES["image build (build-offline.sh, whole)"] = f"{time.monotonic() - start:.0f} s"
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("build-offline: ") and " took " in line:
            what, took = line[len("build-offline: ") :].rsplit(" took ", 1)
            FIGURES[f"  {what}"] = took
    return IMAGE


class ComposeCluster:
    """docker-compose -p PROJECT -f docker-compose.yml -f docker-compose.host.yml, with its own ports."""

    def __init__(self, project: str, secret: str, mnist_dir: Path, logs: Path):
        self.project, self.secret, self.logs = project, secret, logs
        ports = free_ports(7)
        self.master_port, self.master_ui_port = ports[0], ports[1]
        self.worker_ui_ports = {"spark-worker-1": ports[3], "spark-worker-2": ports[5]}
        self.connect_port = ports[6]
        self.env = clean_env(
            SPARK_VERSION=SPARK_VERSION,
            SPARK_AUTH_SECRET=secret,
            MNIST_DIR=str(mnist_dir),
            MASTER_PORT=str(ports[0]),
            MASTER_UI_PORT=str(ports[1]),
            WORKER_1_PORT=str(ports[2]),
            WORKER_1_UI_PORT=str(ports[3]),
            WORKER_2_PORT=str(ports[4]),
            WORKER_2_UI_PORT=str(ports[5]),
            CONNECT_PORT=str(ports[6]),
        )
        self._runs = 0

    def compose(self, *args: str) -> list[str]:
        """The docker-compose argv for this project; the `connect` profile on, so that every command sees
        that service (it starts only when named, as every service here)."""
        argv = ["docker-compose", "--ansi", "never", "-p", self.project, "--profile", "connect"]
        for path in COMPOSE_FILES:
            argv += ["-f", str(path)]
        return [*argv, *args]

    def up(self, timeout: float = 240.0) -> float:
        """Start (or restart) the master and both workers; seconds until all are healthy."""
        start = time.monotonic()
        run(self.compose("up", "-d", "--no-build", *DAEMONS), timeout=timeout, env=self.env)
        deadline = start + timeout
        while (states := self.health()) != dict.fromkeys(DAEMONS, "healthy"):
            if time.monotonic() > deadline or "unhealthy" in states.values() or None in states.values():
                raise RuntimeError(f"the cluster did not become healthy: {states}\n{self.logs_tail()}")
            time.sleep(1)
        return time.monotonic() - start

    def container(self, service: str) -> str | None:
        """The id of the service's container, or None."""
        out = run(self.compose("ps", "-q", service), timeout=60, env=self.env).stdout.split()
        return out[0] if out else None

    def inspect(self, service: str) -> dict:
        """docker inspect of the service's container ({} when it has none)."""
        cid = self.container(service)
        return json.loads(run(["docker", "inspect", cid], timeout=60).stdout)[0] if cid else {}

    def health(self) -> dict[str, str | None]:
        """Each daemon's health status (starting, healthy, unhealthy), None when not running."""
        states: dict[str, str | None] = {}
        for service in DAEMONS:
            state = self.inspect(service).get("State", {})
            states[service] = state.get("Health", {}).get("Status") if state.get("Running") else None
        return states

    def status(self) -> dict:
        """The master web UI's JSON (workers, apps)."""
        return self._json(self.master_ui_port)

    def worker_status(self, service: str) -> dict:
        """A worker web UI's JSON (its executors)."""
        return self._json(self.worker_ui_ports[service])

    @staticmethod
    def _json(port: int) -> dict:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/json/", timeout=5) as resp:
            return json.load(resp)

    def app_ids(self) -> set[str]:
        """Every application the master has seen."""
        status = self.status()
        return {app["id"] for app in status["activeapps"] + status["completedapps"]}

    def submit(self, run_dir: str, train_args: list[str], *, local: bool = False, secret: str | None = None) -> Driver:
        """The submit service in the background: ingest if needed, then train into /runs/RUN_DIR.

        local trains on local[2] inside the same image instead of the cluster; secret=""
        submits without authentication.
        """
        self._runs += 1
        env = {
            "RUN_DIR": f"/runs/{run_dir}",
            "TRAIN_ARGS": " ".join(train_args),
            # The cluster's two 1-core executors from the first task on (as the loopback tests).
            "SUBMIT_ARGS": "--conf spark.cores.max=2 --conf spark.scheduler.minRegisteredResourcesRatio=1.0 "
            "--conf spark.ui.enabled=false --conf spark.ui.showConsoleProgress=false",
        }
        options = ["--rm", "-T", "--name", f"{self.project}_submit_{self._runs}"]
        if local:
            options += ["--no-deps", "-e", "SPARK_MASTER_URL=local[2]"]
        if secret is not None:
            options += ["-e", f"SPARK_AUTH_SECRET={secret}"]
        log = self.logs / f"submit-{self._runs}-{run_dir}.log"
        return Driver(self.compose("run", *options, "submit"), log, env={**self.env, **env}, cwd=REPO)

    def connect_up(self, timeout: float = 240.0) -> float:
        """Start the `connect` service (a Spark Connect server on this cluster); seconds until healthy.

        Like a submit it takes both workers' cores (spark.cores.max=2) and waits for them; it keeps
        them until connect_down, so no submit runs meanwhile.
        """
        start = time.monotonic()
        env = {
            **self.env,
            "CONNECT_ARGS": "--conf spark.cores.max=2 --conf spark.scheduler.minRegisteredResourcesRatio=1.0 "
            "--conf spark.ui.enabled=false",
        }
        run(self.compose("up", "-d", "--no-build", "connect"), timeout=timeout, env=env)
        while (state := self.inspect("connect").get("State", {})).get("Health", {}).get("Status") != "healthy":
            if time.monotonic() > start + timeout or not state.get("Running"):
                raise RuntimeError(
                    f"the connect service did not become healthy: {state.get('Health')}\n"
                    f"{self.logs_tail(service='connect', lines=60)}"
                )
            time.sleep(1)
        return time.monotonic() - start

    def connect_down(self) -> None:
        """Stop and remove the `connect` service's container: the cluster's cores are free again."""
        run(self.compose("rm", "-s", "-f", "connect"), timeout=120, env=self.env)

    def connect_client(self, run_dir: str, train_args: list[str]) -> Driver:
        """`dist-mnist train --remote sc://127.0.0.1:CONNECT_PORT` in a container of the project image
        (host networking, the submit service's volumes), training into /runs/RUN_DIR; in the background.

        The client runs in the image rather than on the host so that its pyspark is the server's release.
        """
        self._runs += 1
        options = [
            "--rm",
            "-T",
            "--no-deps",
            "--name",
            f"{self.project}_client_{self._runs}",
            "-e",
            "SPARK_AUTH_SECRET=",
            "--entrypoint",
            "dist-mnist",
        ]
        argv = [
            "train",
            "--remote",
            f"sc://{LOOPBACK}:{self.connect_port}",
            "--data",
            "/data/mnist",
            "--out",
            f"/runs/{run_dir}",
            "--overwrite",
            *train_args,
        ]
        log = self.logs / f"client-{self._runs}-{run_dir}.log"
        return Driver(self.compose("run", *options, "submit", *argv), log, env=self.env, cwd=REPO)

    def fetch_run(self, run_dir: str, dest: Path) -> Path:
        """Copy /runs/RUN_DIR out of the runs volume into dest; the local copy."""
        volume = f"{self.project}_mnist-runs"
        argv = [
            "docker",
            "run",
            "--rm",
            "--network",
            "host",
            "-v",
            f"{volume}:/runs:ro",
            "--entrypoint",
            "tar",
            IMAGE,
            "-C",
            "/runs",
            "-c",
            run_dir,
        ]
        data = subprocess.run(argv, capture_output=True, timeout=120, check=True, stdin=subprocess.DEVNULL).stdout
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(dest, filter="data")
        return dest / run_dir

    def kill(self, service: str) -> None:
        """docker kill the service's container: its daemon and executors die at once."""
        cid = self.container(service)
        assert cid, f"{service} has no container"
        run(["docker", "kill", cid], timeout=60)

    def down(self) -> None:
        """docker-compose down -v: stop and remove containers, networks and volumes."""
        run(self.compose("down", "-v", "--remove-orphans", "--timeout", "5"), timeout=300, env=self.env)

    def leftovers(self) -> dict[str, list[str]]:
        """Containers (running or not), networks and volumes that still carry the project's label."""
        label = f"label={PROJECT_LABEL}={self.project}"
        found = {}
        for kind, argv in (
            ("containers", ["docker", "ps", "-aq"]),
            ("networks", ["docker", "network", "ls", "-q"]),
            ("volumes", ["docker", "volume", "ls", "-q"]),
        ):
            found[kind] = run([*argv, "--filter", label], timeout=60).stdout.split()
        return found

    def logs_tail(self, lines: int = 30, service: str | None = None) -> str:
        """The daemons' (or one service's) last log lines, for failure messages."""
        services = [service] if service else list(DAEMONS)
        try:
            return run(self.compose("logs", "--tail", str(lines), *services), timeout=60, env=self.env).stdout
        except (RuntimeError, subprocess.TimeoutExpired) as e:
            return f"(no logs: {e})"
