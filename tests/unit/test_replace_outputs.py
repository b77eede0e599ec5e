"""Outputs replaced with no window: a writer SIGKILLed between any two of its steps (strace's fault
injection lands the kill on a chosen rename) leaves the old copy or the new one whole, and the
next command puts back what is missing, removes what the dead writer left and says so. A
symlinked output keeps its link: what it points to is replaced."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ..support import REPO
from ..support.cli import snapshot
from ..support.processes import clean_env
from ..support.tiny_runs import tiny_data, train_cli

pytestmark = pytest.mark.skipif(not shutil.which("strace"), reason="needs strace(1) for the kills")
RENAMES = "rename,renameat,renameat2"
CLI = [sys.executable, "-m", "dist_mnist.cli"]


def ingest_argv(mnist_dir: Path, data: Path, *extra: str) -> list[str]:
    return [*CLI, "ingest", "--source", str(mnist_dir), "--out", str(data), *extra]


def killed_at_rename(argv: list[str], n: int) -> subprocess.CompletedProcess:
    """Run argv under strace, SIGKILLed as it makes its n-th rename (before the rename happens)."""
    trace = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", f"trace={RENAMES}"]
    trace += ["-e", f"inject={RENAMES}:signal=KILL:when={n}"]
    done = subprocess.run(
        [*trace, *argv], env=clean_env(), cwd=REPO, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode != 0, done.stdout  # it did not get to finish
    return done


def run(argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=clean_env(), cwd=REPO, capture_output=True, text=True, timeout=300, check=False)


def beside(path: Path) -> list[str]:
    """What lies beside `path` that belongs to it (hidden copies, a lock file a killed writer left)."""
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def copies(path: Path) -> list[str]:
    """The hidden copies beside `path` (its old copy moved aside, temporary ones)."""
    return [name for name in beside(path) if not name.endswith(".lock")]


@pytest.mark.mnist
def test_ingest_killed_between_its_two_renames_is_put_back_by_the_next_command(mnist_dir, tmp_path):
    data = tmp_path / "DATA"
    assert run(ingest_argv(mnist_dir, data)).returncode == 0
    before = snapshot(data)
    # renames: 1 metadata.json into the new copy, 2 DATA aside, 3 the new copy in: killed at 3
    killed_at_rename(ingest_argv(mnist_dir, data, "--overwrite"), 3)
    assert not data.exists() and len(copies(data)) == 2  # the old copy aside, the new one made
    reader = run([*CLI, "report", "--help"])  # (a command that reads no DATA leaves it alone)
    assert reader.returncode == 0 and not data.exists()
    again = run(ingest_argv(mnist_dir, data, "--overwrite"))
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert lines[0].startswith(f"{data}: put back its previous copy (.DATA.old-"), again.stdout
    assert lines[1].startswith(f"{data}: removed what an interrupted write had left: .DATA."), again.stdout
    assert snapshot(data) == before and beside(data) == []  # nothing hidden left beside it


@pytest.mark.mnist
def test_a_reader_of_the_data_puts_it_back_too(mnist_dir, tmp_path):
    data = tmp_path / "DATA"
    assert run(ingest_argv(mnist_dir, data)).returncode == 0
    killed_at_rename(ingest_argv(mnist_dir, data, "--overwrite"), 3)
    assert not data.exists()
    from dist_mnist.files.atomic import recover_if_idle

    lines: list[str] = []
    recover_if_idle(data, lines.append)  # what train, evaluate and predict do with --data first
    assert (data / "train").is_dir() and beside(data) == [] and len(lines) == 2


@pytest.mark.mnist
def test_ingest_killed_while_it_writes_leaves_a_copy_the_next_ingest_removes(mnist_dir, tmp_path):
    data = tmp_path / "DATA"
    killed_at_rename(ingest_argv(mnist_dir, data), 1)  # the new copy is half made, DATA never was
    assert not data.exists() and len(copies(data)) == 1
    again = run(ingest_argv(mnist_dir, data))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"{data}: removed what an interrupted write had left: .DATA.")
    assert beside(data) == []


def test_an_output_behind_a_symlink_keeps_its_link(tmp_path):
    """--out LINK --overwrite replaces the directory LINK points to; LINK stays a link to it."""
    data = tiny_data(tmp_path / "data")
    target = tmp_path / "elsewhere" / "run"
    target.mkdir(parents=True)
    link = tmp_path / "RUN"
    link.symlink_to(target)
    assert train_cli(data, link, "--overwrite") == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert (target / "model.npz").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RUN", "data", "elsewhere"]
    assert beside(target) == []
