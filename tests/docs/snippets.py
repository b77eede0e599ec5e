"""The fenced blocks of README.md and docs/*.md, their `<!-- test: ... -->` markers, and how to run one.

A marker is the line before a fence (docs/testing.md, "The documented snippets"):

    <!-- test: TIER[, MARK ...][; given: FIXTURE, ...] -->     run in that tier, given those fixtures
    <!-- test: not run: REASON -->                            not run, and why

A block runs in a fresh directory holding what its `given:` names, with the checkout's conf/,
jobs/ and .venv linked in, as a user would paste it: bash with -e and pipefail, python as a script.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RUNNABLE = {"bash": "bash", "sh": "bash", "shell": "bash", "console": "bash", "python": "python", "py": "python"}
TIERS = ("unit", "spark", "connect")  # unit: no JVM
MARKS = ("mnist", "slow", "mlflow")
SERVER, SHARED = "sc://HOST:15002", "/shared"  # placeholders the connect tier fills in
SHARED_DATA = f"{SHARED}/mnist"
GIVEN = (
    "data/mnist",
    "data/raw",
    "runs/tutorial",
    "runs/tutorial/model.onnx",
    "mlruns.db",
    SERVER,
    SHARED,
    SHARED_DATA,
)
LINKED = ("conf", "jobs", ".venv")  # what a block finds of the checkout
# a pytest process may be a Spark Connect client, or point MLflow elsewhere: a user's shell is neither
DROPPED_ENV = (
    "SPARK_CONNECT_MODE_ENABLED",
    "SPARK_REMOTE",
    "SPARK_LOCAL_REMOTE",
    "PYSPARK_SUBMIT_ARGS",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
)
MARKER = re.compile(r"^<!-- test: (.*) -->$")
FENCE = re.compile(r"^```(.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language, its text and the marker before it."""

    page: str  # relative to the checkout
    line: int  # of the opening fence, from 1
    language: str
    code: str
    marker: str | None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.marker is not None and not self.marker.startswith("not run")

    @property
    def parts(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        """(tier, marks, given) of a block that runs."""
        head, *rest = (part.strip() for part in (self.marker or "").split(";"))
        tier, *marks = (word.strip() for word in head.split(","))
        given: tuple[str, ...] = ()
        for part in rest:
            key, _, value = part.partition(":")
            if key.strip() != "given":
                raise ValueError(f"{self.id}: unknown marker part {part!r}")
            given += tuple(item.strip() for item in value.split(","))
        return tier, tuple(marks), given


def page_blocks(page: str, text: str) -> list[Block]:
    """Every fenced block of one page, in order."""
    lines, found, i = text.splitlines(), [], 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith("```")), len(lines))
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(before)
        code = "\n".join(lines[i + 1 : end]) + "\n"
        found.append(Block(page, i + 1, fence[1].strip(), code, marker[1].strip() if marker else None))
        i = end + 1
    return found


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def all_blocks() -> list[Block]:
    return [b for p in pages() for b in page_blocks(str(p.relative_to(REPO)), p.read_text())]


def problems(blocks: list[Block]) -> list[str]:
    """What is wrong with the blocks' languages and markers: one line each."""
    out = []
    for b in blocks:
        if not b.language:
            out.append(f"{b.id}: a fence without a language (text, toml, bash, python, ...)")
        elif b.language in RUNNABLE and b.marker is None:
            out.append(f"{b.id}: a {b.language} block without a <!-- test: ... --> marker on the line before it")
        elif b.marker is not None and b.marker.startswith("not run"):
            if len(b.marker.removeprefix("not run").strip(": ")) < 10:
                out.append(f"{b.id}: 'not run' needs a reason: {b.marker!r}")
        elif b.marker is not None:
            if b.language not in RUNNABLE:
                out.append(f"{b.id}: a runnable marker on a {b.language} block")
                continue
            try:
                tier, marks, given = b.parts
            except ValueError as e:
                out.append(str(e))
                continue
            out += [f"{b.id}: unknown tier {tier!r} (one of {TIERS})"] * (tier not in TIERS)
            out += [f"{b.id}: unknown mark {m!r} (one of {MARKS})" for m in marks if m not in MARKS]
            out += [f"{b.id}: unknown given {g!r} (one of {GIVEN})" for g in given if g not in GIVEN]
    return out


def runnable(tiers: tuple[str, ...]) -> list[Block]:
    return [b for b in all_blocks() if b.runs and b.parts[0] in tiers]


def make_sandbox(root: Path, block: Block, mnist_dir: Path | None = None) -> Path:
    """A directory holding what the block's `given:` names; returns it."""
    from ..support.tiny_runs import TINY, tiny_data, train_cli

    root.mkdir(parents=True)
    for name in LINKED:
        (root / name).symlink_to(REPO / name)
    data, run = root / "data" / "mnist", root / "runs" / "tutorial"
    given = set(block.parts[2])
    if given & {"data/mnist", "runs/tutorial", "runs/tutorial/model.onnx", "mlruns.db"}:
        tiny_data(data)
    if "data/raw" in given:
        (root / "data" / "raw").mkdir(parents=True)
        for gz in sorted(Path(mnist_dir or "").glob("*.gz")):
            (root / "data" / "raw" / gz.name).symlink_to(gz)
    if given & {"runs/tutorial", "runs/tutorial/model.onnx"}:
        assert train_cli(data, run) == 0
    if "runs/tutorial/model.onnx" in given:
        from dist_mnist.cli import commands as cli

        assert cli.main(["export", str(run), "--onnx", str(run / "model.onnx")]) == 0
    if "mlruns.db" in given:  # the store `train --mlflow` makes in the directory it runs from
        sets = [arg for item in TINY for arg in ("--set", item)]
        argv = [sys.executable, "-m", "dist_mnist.cli", "train", "--data", "data/mnist", "--out", "runs/tutorial"]
        done = subprocess.run(
            [*argv, *sets, "--mlflow"], cwd=root, env=user_env(), capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
    if given & {SHARED, SHARED_DATA}:
        (root / "shared").mkdir()
    if SHARED_DATA in given:
        tiny_data(root / "shared" / "mnist")
    return root


def user_env() -> dict[str, str]:
    """This environment as a user's shell would have it: the checkout's .venv first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_block(block: Block, root: Path, server: str | None = None, timeout: float = 1200) -> str:
    """Run the block in `root` as a user would; its output, or an AssertionError with the output's end."""
    code, given = block.code, block.parts[2]
    if SERVER in given:
        assert server is not None, f"{block.id} needs a Spark Connect server: the connect tier runs it"
        code = code.replace(SERVER, server)
    if SHARED in given or SHARED_DATA in given:
        code = code.replace(SHARED, str(root / "shared"))
    kind = RUNNABLE[block.language]
    script = root / ("snippet.sh" if kind == "bash" else "snippet.py")
    script.write_text(code)
    argv = ["bash", "-e", "-o", "pipefail", script.name] if kind == "bash" else [sys.executable, script.name]
    done = subprocess.run(argv, cwd=root, env=user_env(), capture_output=True, text=True, timeout=timeout, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"{block.id} failed (exit {done.returncode}):\n{code}\n---\n{output[-4000:]}"
    if kind == "python":
        assert done.stdout.strip(), f"{block.id}: a python snippet shows its result, this one printed nothing"
    return output
