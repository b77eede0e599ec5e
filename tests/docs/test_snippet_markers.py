"""Every fenced block of README.md and docs/*.md has a language, and every bash/python block a marker
that the snippet tests understand: a new unmarked block fails here."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .snippets import MARKS, REPO, TIERS, all_blocks, page_blocks, problems

PAGE = """Some text.

```bash
dist-mnist train --data data/mnist --out runs/x
```

<!-- test: not run: needs a standalone cluster of hosts -->
```bash
docker/spark-node.sh master
```

<!-- test: spark, mnist; given: data/raw -->
```python
print(1)
```

```
a fence without a language
```
"""


def test_every_block_is_marked_and_every_marker_is_understood():
    found = all_blocks()
    assert len([b for b in found if b.runs]) >= 10, "the snippet tests found too few blocks to run"
    assert problems(found) == []


def test_an_unmarked_block_a_bare_fence_and_a_reasonless_skip_are_found():
    blocks = page_blocks("page.md", PAGE + "\n<!-- test: not run -->\n```python\nx = 1\n```\n")
    assert [b.marker for b in blocks] == [
        None,
        "not run: needs a standalone cluster of hosts",
        "spark, mnist; given: data/raw",
        None,
        "not run",
    ]
    assert blocks[2].parts == ("spark", ("mnist",), ("data/raw",))
    assert problems(blocks) == [
        "page.md:3: a bash block without a <!-- test: ... --> marker on the line before it",
        "page.md:17: a fence without a language (text, toml, bash, python, ...)",
        "page.md:22: 'not run' needs a reason: 'not run'",
    ]


def test_the_tiers_and_marks_are_pytest_markers():
    markers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    names = {m.split(":")[0] for m in markers}
    assert {*TIERS, *MARKS} - {"unit"} <= names


def test_each_tier_has_a_runner():
    """unit and spark blocks run beside this file; connect blocks in tests/connect's own pytest process."""
    from tests.conftest import CONNECT_TESTS

    assert 'runnable(("unit", "spark"))' in (Path(__file__).parent / "test_snippets.py").read_text()
    assert 'runnable(("connect",))' in (CONNECT_TESTS / "test_doc_snippets.py").read_text()
