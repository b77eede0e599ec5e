"""Run every documented snippet of the unit and spark tiers (the connect tier: tests/connect/test_doc_snippets.py)."""

from __future__ import annotations

import pytest

from .snippets import Block, make_sandbox, run_block, runnable


def _param(block: Block):
    tier, marks, _ = block.parts
    names = [m for m in (tier, *marks) if m != "unit"]
    return pytest.param(block, marks=[getattr(pytest.mark, m) for m in names], id=block.id)


@pytest.mark.parametrize("block", [_param(b) for b in runnable(("unit", "spark"))])
def test_the_snippet_runs_as_written(block: Block, tmp_path, request):
    _, marks, given = block.parts
    if "mlflow" in marks:
        pytest.importorskip("mlflow")
    mnist = request.getfixturevalue("mnist_dir") if "data/raw" in given else None
    run_block(block, make_sandbox(tmp_path / "work", block, mnist))
