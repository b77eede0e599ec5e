"""Run every documented snippet of the connect tier against this tier's Spark Connect server."""

from __future__ import annotations

import pytest

from ..docs.snippets import Block, make_sandbox, run_block, runnable


@pytest.mark.parametrize("block", [pytest.param(b, id=b.id) for b in runnable(("connect",))])
def test_the_snippet_runs_against_a_connect_server(block: Block, connect_server, tmp_path):
    run_block(block, make_sandbox(tmp_path / "work", block), server=connect_server.url)
