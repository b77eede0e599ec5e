""".pre-commit-config.yaml: valid, offline (local hooks on the venv's tools), and checking what `make lint` checks."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from ..support import REPO

yaml = pytest.importorskip("yaml", reason="pre-commit (the test extra) brings PyYAML")

CONFIG = REPO / ".pre-commit-config.yaml"


def _hooks() -> dict[str, dict]:
    repos = yaml.safe_load(CONFIG.read_text())["repos"]
    assert [r["repo"] for r in repos] == ["local"], "a hook repository would be downloaded"
    return {h["id"]: h for r in repos for h in r["hooks"]}


def _make_lint() -> tuple[list[str], str]:
    """The Makefile's RUFF_PATHS and its `lint:` recipe."""
    text = (REPO / "Makefile").read_text()
    paths = re.search(r"^RUFF_PATHS := (.*)$", text, re.MULTILINE)[1].split()
    return paths, re.search(r"^lint:.*?\n\n", text, re.MULTILINE | re.DOTALL)[0]


def test_the_config_is_valid():
    pytest.importorskip("pre_commit")
    done = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", str(CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_hooks_run_the_venvs_ruff_and_the_function_length_check_as_make_lint_does():
    hooks = _hooks()
    assert set(hooks) == {"ruff-check", "ruff-format", "function-lengths"}
    assert all(h["language"] == "system" and h["entry"].startswith(".venv/bin/") for h in hooks.values())
    ruff_paths, recipe = _make_lint()
    for hook, command in (("ruff-check", "ruff check"), ("ruff-format", "ruff format")):
        assert hooks[hook]["entry"] == f".venv/bin/{command}"
        assert f"$(BIN)/{command}" in recipe
        assert hooks[hook]["files"] == f"^({'|'.join(ruff_paths)})/"
    lengths = hooks["function-lengths"]["entry"].removeprefix(".venv/bin/python ")
    assert f"$(BIN)/python {lengths}\n" in recipe
    assert hooks["function-lengths"]["pass_filenames"] is False  # it walks dist_mnist/ itself
