"""`predict --overwrite` SIGKILLed between moving the old output aside and renaming the new one in
(strace's fault injection lands the kill on that rename): no partial output that reads as valid;
the next command puts the old output back, whole, and says so."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from ..support import REPO
from ..support.processes import clean_env
from ..support.tiny_runs import tiny_data, train_cli

pytestmark = pytest.mark.skipif(not shutil.which("strace"), reason="needs strace(1) for the kill")
RENAMES = "rename,renameat,renameat2"


def predict(run: Path, data: Path, out: Path, *extra: str, trace: list[str] = ()) -> subprocess.CompletedProcess:
    argv = [*trace, sys.executable, "-m", "dist_mnist.cli", "predict", "--master", "local[1]"]
    argv += ["--model", str(run), "--data", str(data / "test"), "--out", str(out), *extra]
    env = clean_env(SPARK_CONF_DIR=str(REPO / "conf"))
    return subprocess.run(argv, env=env, cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def rows(out: Path) -> int:
    return pq.read_table(out).num_rows


def test_a_kill_between_the_renames_leaves_the_old_output_to_be_put_back(tmp_path):
    data, run, out = tiny_data(tmp_path / "data"), tmp_path / "RUN", tmp_path / "OUT"
    assert train_cli(data, run) == 0
    assert predict(run, data, out).returncode == 0
    n = rows(out)
    # this process's renames (not its JVM's, which commit the Parquet files): which one moves OUT aside
    log = tmp_path / "renames.log"
    trace = ["strace", "-qq", "-o", str(log), "-e", f"trace={RENAMES}"]
    assert predict(run, data, out, "--overwrite", trace=trace).returncode == 0
    calls = [line for line in log.read_text().splitlines() if line.startswith("rename")]
    aside = next(i for i, line in enumerate(calls, 1) if line.startswith(f'rename("{out}", "{out}.old-'))
    kill = ["strace", "-qq", "-o", "/dev/null", "-e", f"trace={RENAMES}"]
    kill += ["-e", f"inject={RENAMES}:signal=KILL:when={aside + 1}"]  # the next: the new output's rename in
    assert predict(run, data, out, "--overwrite", trace=kill).returncode != 0
    assert not out.exists()  # nothing at OUT that a reader would take for the output
    assert any(p.name.startswith("OUT.old-") for p in tmp_path.iterdir())
    again = predict(run, data, out)
    assert again.returncode == 2, again.stderr[-2000:]
    assert again.stdout.startswith(f"{out}: put back its previous copy (OUT.old-"), again.stdout
    assert f"{out}: already exists (pass --overwrite to replace it)" in again.stderr
    assert rows(out) == n and sorted(p.name for p in tmp_path.iterdir()) == ["OUT", "RUN", "data", "renames.log"]
