"""What pyproject's extras promise against what the documented snippets import."""

from __future__ import annotations

import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from ..support import REPO


def _names(requirements: list[str]) -> set[str]:
    """Distribution names of requirement strings, normalised (PEP 503)."""
    return {re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r)[0]).lower() for r in requirements}


def _snippet_of(page: str) -> str:
    """The first ```python block of a page of docs/."""
    text = (REPO / "docs" / page).read_text()
    return re.search(r"```python\n(.*?)```", text, re.DOTALL)[1]


def test_the_onnx_extra_installs_what_the_scoring_snippet_imports():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    installed = _names(project["dependencies"]) | _names(project["optional-dependencies"]["onnx"])
    snippet = _snippet_of("export.md")
    imported = {
        m.split(".")[0]
        for line in re.findall(r"^import (.+)$", snippet, re.MULTILINE)
        for m in re.findall(r"(\w[\w.]*)(?: as \w+)?(?:,|$)", line)
    }
    assert "onnxruntime" in imported, snippet  # the snippet this test is about
    assert imported <= installed, sorted(imported - installed)
