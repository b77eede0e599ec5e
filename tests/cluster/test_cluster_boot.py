"""The loopback cluster itself: boot, a trivial job, RPC authentication, and the node script."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
from pathlib import Path

import pytest

from ..support import REPO
from ..support.processes import clean_env
from .standalone import NODE_SCRIPT, spark_home, submit_argv

COMPOSE_FILE = REPO / "docker" / "docker-compose.yml"
SUBMIT_SCRIPT = REPO / "docker" / "spark-submit.sh"

PROBE_JOB = """
import json
from pyspark import SparkContext

def facts(_):
    import importlib.util, os, sys
    return sys.executable, importlib.util.find_spec("dist_mnist") is not None, os.getcwd()

sc = SparkContext()
total = sc.parallelize(range(100), 4).map(lambda x: x * x).sum()
seen = sc.parallelize(range(8), 8).map(facts).collect()
print("RESULT " + json.dumps({
    "sum": total,
    "pythons": sorted({s[0] for s in seen}),
    "dist_mnist": any(s[1] for s in seen),
    "cwds": sorted({s[2] for s in seen}),
    "executors": sc._jsc.sc().getExecutorIds().size(),
}))
sc.stop()
"""


def _files_containing(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def _result(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert lines, f"the job printed no RESULT line:\n{output[-4000:]}"
    return json.loads(lines[-1][len("RESULT ") :])


def test_cluster_boots_with_two_alive_workers(cluster):
    workers = cluster.alive_workers()
    assert sorted(w["port"] for w in workers) == sorted(w.rpc_port for w in cluster.workers)
    assert all(w["cores"] == 1 and w["memory"] == 2048 for w in workers), workers
    assert cluster.status()["status"] == "ALIVE"


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
def test_secret_is_neither_on_command_lines_nor_on_disk(cluster):
    pgids = {n.pid for n in cluster.nodes if n.alive()}
    cmdlines = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.getpgid(int(proc.name)) in pgids:
                    cmdlines.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except (ProcessLookupError, FileNotFoundError, PermissionError):
                continue  # exited while we looked
    assert len(cmdlines) >= 3, "expected the master and two worker JVMs"
    assert not [c for c in cmdlines if cluster.secret in c]
    # spark-node.sh deletes its properties file once the JVM holds it open.
    assert not _files_containing(cluster.root, cluster.secret)


def test_trivial_job_runs_on_the_worker_python(cluster, cluster_submit, start_driver, worker_python, tmp_path):
    job = tmp_path / "probe.py"
    job.write_text(PROBE_JOB)
    driver = start_driver([*cluster_submit(), "--name", "boot-probe", str(job)])
    assert driver.wait(timeout=300) == 0, driver.tail()
    result = _result(driver.output)
    assert result["sum"] == sum(x * x for x in range(100))
    assert result["pythons"] == [str(worker_python)]
    assert result["dist_mnist"] is False
    assert result["executors"] == 2
    assert all(cwd.startswith(str(cluster.root)) for cwd in result["cwds"]), result["cwds"]
    # Executors get the secret through their environment: not in their logged launch commands.
    assert not _files_containing(cluster.root, cluster.secret)


def test_submit_script_authenticates_from_the_environment(cluster, worker_python, start_driver, tmp_path):
    """docker/spark-submit.sh, as the compose file's submit service runs it."""
    job, scratch = tmp_path / "probe.py", tmp_path / "scratch"
    job.write_text(PROBE_JOB)
    scratch.mkdir()
    options = submit_argv(cluster.master_url, worker_python, tmp_path)[3:]  # minus spark-submit --master URL
    env = {"SPARK_MASTER_URL": cluster.master_url, "SPARK_AUTH_SECRET": cluster.secret, "TMPDIR": str(scratch)}
    driver = start_driver([str(SUBMIT_SCRIPT), *options, str(job)], env)
    assert driver.wait(timeout=300) == 0, driver.tail()
    assert _result(driver.output)["sum"] == sum(x * x for x in range(100))
    assert not list(scratch.iterdir()), "the properties file with the secret was left behind"


def test_submit_without_or_with_a_wrong_secret_is_refused(cluster, cluster_submit, start_driver, tmp_path):
    job = tmp_path / "probe.py"
    job.write_text(PROBE_JOB)
    # Both at once: each waits out Spark's fixed 3 x 20 s master-registration retries.
    drivers = {
        "no secret": start_driver([*cluster_submit(secret=None), "--name", "refused-probe", str(job)]),
        "wrong secret": start_driver(
            [*cluster_submit(secret=secrets.token_hex(24)), "--name", "refused-probe", str(job)]
        ),
    }
    for case, driver in drivers.items():
        rc = driver.wait(timeout=240)
        output = driver.output
        assert rc != 0, f"{case}: the job ran:\n{driver.tail()}"
        assert "RESULT" not in output, case
        assert "All masters are unresponsive" in output, f"{case}:\n{driver.tail()}"
    # What the refusal looks like: a client without auth sends plain RPC; a wrong secret fails SASL.
    assert "Expected SaslMessage" in drivers["no secret"].output
    assert "Mismatched response" in drivers["wrong secret"].output
    status = cluster.status()
    assert not [a for a in status["activeapps"] + status["completedapps"] if a["name"] == "refused-probe"]


def _node_script(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(NODE_SCRIPT), *args], env=clean_env(**env), capture_output=True, text=True, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "missing role"),
        (("driver",), "unknown role 'driver'"),
        (("worker",), "worker needs exactly one master URL"),
        (("worker", "127.0.0.1:7077"), "bad master URL"),
        (("master", "spark://127.0.0.1:7077"), "master takes no arguments"),
    ],
)
def test_node_script_rejects_bad_arguments(args, message):
    result = _node_script(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "usage: spark-node.sh" in result.stderr or "expected spark://" in result.stderr


def test_node_script_rejects_a_missing_spark_home(tmp_path):
    result = _node_script("master", SPARK_HOME=str(tmp_path))
    assert result.returncode == 2
    assert "no executable bin/spark-class" in result.stderr


def test_node_script_rejects_a_secret_that_a_properties_file_would_change():
    result = _node_script("master", SPARK_AUTH_SECRET="two words", SPARK_HOME=str(spark_home()))
    assert result.returncode == 2
    assert "SPARK_AUTH_SECRET must not contain whitespace" in result.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_scripts_are_shellcheck_clean():
    scripts = (NODE_SCRIPT, SUBMIT_SCRIPT, REPO / "docker" / "build-offline.sh", REPO / ".ci" / "run")
    result = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(
    shutil.which("docker-compose") is None, reason="docker-compose not installed (apt-get install docker-compose)"
)
def test_compose_file_validates_and_requires_a_secret(tmp_path):
    def config(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["docker-compose", "-f", str(COMPOSE_FILE), "config", "-q"],
            capture_output=True,
            text=True,
            timeout=120,
            env=clean_env(MNIST_DIR=str(tmp_path), **env),
            check=False,
        )

    ok = config(SPARK_AUTH_SECRET="test-secret")
    assert ok.returncode == 0, ok.stderr
    refused = config()
    assert refused.returncode != 0
    assert "SPARK_AUTH_SECRET" in refused.stderr
