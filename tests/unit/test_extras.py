"""What pyproject's extras promise against what the README's snippets import."""

from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]


def _names(requirements: list[str]) -> set[str]:
    """Distribution names of requirement strings, normalised (PEP 503)."""
    return {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r)[0]).lower() for r in requirements}


def _snippet_after(heading: str) -> str:
    """The first ```python block of the README after `heading`."""
    text = (REPO / "README.md").read_text()
    return re.search(r"```python\n(.*?)```", text[text.index(heading):], re.S)[1]


def test_the_onnx_extra_installs_what_the_scoring_snippet_imports():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    installed = _names(project["dependencies"]) | _names(project["optional-dependencies"]["onnx"])
    snippet = _snippet_after("### Export to ONNX")
    imported = {m.split(".")[0] for line in re.findall(r"^import (.+)$", snippet, re.M)
                for m in re.findall(r"(\w[\w.]*)(?: as \w+)?(?:,|$)", line)}
    assert "onnxruntime" in imported, snippet  # the snippet this test is about
    assert imported <= installed, sorted(imported - installed)
