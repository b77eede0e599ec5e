"""The docker-compose mini-cluster, run for real: it boots from the project image, the submit
service ingests MNIST and trains on it like local[2], a Spark Connect client trains the same
model through the connect service, a killed worker container does not change the model, a
submit without the secret is refused, and `down -v` leaves nothing behind.

The tests share one cluster and run in file order; the last one takes it down.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from ..support.models import assert_run_written, assert_same_model, final_accuracy, read_params
from ..support.processes import Driver
from .compose import DAEMONS, FIGURES, ComposeCluster

# 3 epochs x 59 rounds of 4 local steps on the persistent transport: long enough to kill a
# worker in epoch 2; the rest may run one Spark job a round when its slot does not come back.
LONG = ["--set", "epochs=3", "--set", "mode=average", "--set", "averaging_frequency=4", "--set", "log_every_rounds=10"]
KILL_IN_EPOCH = 2
ROUND = r"\bepoch (\d+)/\d+ round (\d+)/\d+"
TIMEOUT = 900


def finished(driver: Driver) -> None:
    """Wait for a submit that must succeed."""
    assert driver.wait(timeout=TIMEOUT) == 0, driver.tail()


def max_difference(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> float:
    """The largest absolute difference between two models' parameters."""
    return max(float(np.max(np.abs(got[k].astype(np.float64) - want[k]))) for k in want)


@pytest.fixture(scope="module")
def local_model(compose_session: ComposeCluster, tmp_path_factory) -> Callable[[], dict[str, np.ndarray]]:
    """LONG trained on local[2] inside the project image (the cluster's NumPy), computed on first use.

    Lazy, so that the cluster run goes first and it is the submit service that ingests MNIST.
    """
    cache: dict[str, dict[str, np.ndarray]] = {}

    def model() -> dict[str, np.ndarray]:
        if not cache:
            finished(compose_session.submit("local", LONG, local=True))
            cache["local"] = read_params(compose_session.fetch_run("local", tmp_path_factory.mktemp("local")))
        return cache["local"]

    return model


@pytest.fixture(scope="module")
def cluster_run(compose_session: ComposeCluster, tmp_path_factory) -> Callable[[], dict]:
    """LONG trained on the cluster by the submit service, computed on first use: its driver, the
    applications the master saw appear, and RUN copied out. The first submit: it ingests MNIST."""
    cache: dict = {}

    def run() -> dict:
        if not cache:
            apps = compose_session.app_ids()
            driver = compose_session.submit("cluster", LONG)
            finished(driver)
            cache.update(
                driver=driver,
                new_apps=compose_session.app_ids() - apps,
                run_dir=compose_session.fetch_run("cluster", tmp_path_factory.mktemp("cluster")),
            )
        return cache

    return run


def test_cluster_comes_up_from_the_project_image(compose_cluster: ComposeCluster, compose_image: str):
    status = compose_cluster.status()
    assert status["status"] == "ALIVE"
    workers = [w for w in status["workers"] if w["state"] == "ALIVE"]
    assert len(workers) == 2 and all(w["host"] == "127.0.0.1" and w["cores"] == 1 for w in workers), workers
    for service in DAEMONS:
        info = compose_cluster.inspect(service)
        assert (info["Config"]["Image"], info["HostConfig"]["NetworkMode"]) == (compose_image, "host"), service
    assert compose_cluster.leftovers()["networks"] == [], "the compose project created a network"


def test_submit_trains_on_the_cluster_like_local(compose_cluster: ComposeCluster, cluster_run, local_model):
    done = cluster_run()
    driver = done["driver"]
    assert "ingested" in driver.output, "the first submit did not ingest MNIST into the data volume"
    assert done["new_apps"], f"the master never saw the application:\n{driver.tail(10)}"
    assert_run_written(done["run_dir"])
    model = read_params(done["run_dir"])
    FIGURES["cluster model vs local[2] (max |difference|)"] = f"{max_difference(model, local_model()):.3g}"
    assert_same_model(model, local_model())


def test_a_connect_client_trains_the_classic_model_through_the_connect_service(
    compose_cluster: ComposeCluster, cluster_run, tmp_path: Path
):
    classic = read_params(cluster_run()["run_dir"])  # also ingests MNIST when this test runs alone
    FIGURES["connect service start (until its gRPC port answers)"] = f"{compose_cluster.connect_up():.0f} s"
    try:
        server_apps = [app for app in compose_cluster.status()["activeapps"] if app["name"] == "dist-mnist-connect"]
        assert len(server_apps) == 1, (
            f"the master does not run the Connect server: {compose_cluster.status()['activeapps']}"
        )
        client = compose_cluster.connect_client("connect", [*LONG, "--set", "workers=2"])
        finished(client)
    finally:
        compose_cluster.connect_down()
    said = [line for line in client.lines if line.startswith("transport:")]
    # Everything is on the host's network: the executors reach the client's channel, no fallback.
    assert len(said) == 1 and re.fullmatch(
        r"transport: persistent barrier stage of 2 tasks, rounds over ZeroMQ "
        r"\(CURVE-encrypted[^)]*\) at tcp://127\.0\.0\.1:\d+",
        said[0],
    ), said
    run_dir = compose_cluster.fetch_run("connect", tmp_path)
    assert_run_written(run_dir)
    model = read_params(run_dir)
    FIGURES["Connect client model vs classic cluster (max |difference|)"] = f"{max_difference(model, classic):.3g}"
    assert sorted(model) == sorted(classic)
    for name in classic:
        np.testing.assert_array_equal(model[name], classic[name], err_msg=name)
    accuracy = final_accuracy(run_dir)
    FIGURES["Connect client run: test accuracy"] = f"{accuracy:.4f}"
    assert accuracy == final_accuracy(cluster_run()["run_dir"])


def test_training_survives_a_killed_worker_container(compose_cluster: ComposeCluster, local_model, tmp_path: Path):
    driver = compose_cluster.submit("killed", LONG)
    driver.wait_for_line(r"transport: persistent barrier stage of 2 tasks", timeout=600)
    driver.wait_for_line(ROUND, timeout=600, accept=lambda m: int(m.group(1)) >= KILL_IN_EPOCH)
    victim = "spark-worker-1"
    assert compose_cluster.worker_status(victim)["executors"], "the victim runs no executor: killing it proves nothing"
    assert driver.proc.poll() is None, "the run ended before the worker was killed; make LONG longer"
    killed_after = "epoch {} round {}".format(*re.findall(ROUND, driver.output)[-1])
    compose_cluster.kill(victim)
    finished(driver)
    assert re.search(r"Lost executor \d+", driver.output), f"the driver never lost an executor:\n{driver.tail()}"
    assert "transport: " in driver.output and "redoing the round" in driver.output, driver.tail()
    assert compose_cluster.health()[victim] is None, "the killed worker came back by itself"
    model = read_params(compose_cluster.fetch_run("killed", tmp_path))
    FIGURES["killed-worker run vs local[2] (max |difference|)"] = (
        f"{max_difference(model, local_model()):.3g} (worker-1 killed after {killed_after})"
    )
    assert_same_model(model, local_model())


def test_submit_without_the_secret_is_refused(compose_cluster: ComposeCluster):
    apps = compose_cluster.app_ids()
    driver = compose_cluster.submit("refused", LONG, secret="")
    rc = driver.wait(timeout=300)
    assert rc != 0, f"the job ran without the secret:\n{driver.tail()}"
    assert "All masters are unresponsive" in driver.output, driver.tail()
    assert compose_cluster.app_ids() == apps


def test_down_removes_containers_networks_and_volumes(compose_session: ComposeCluster):
    compose_session.down()
    assert compose_session.leftovers() == {"containers": [], "networks": [], "volumes": []}
    for volume in ("mnist-data", "mnist-runs"):
        assert (
            subprocess.run(
                ["docker", "volume", "inspect", f"{compose_session.project}_{volume}"],
                capture_output=True,
                timeout=60,
                check=False,
            ).returncode
            != 0
        ), volume
