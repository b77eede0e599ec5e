"""benchmarks/run_all.py runs exactly what benchmarks/README.md's table lists; the table names every results file."""

import itertools
import re
import sys
from argparse import Namespace
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
import run_all  # noqa: E402


def claim_table() -> list[dict[str, str]]:
    """The rows of benchmarks/README.md's "What backs what" table, by column name (code spans unwrapped)."""
    section = (REPO / "benchmarks" / "README.md").read_text().split("## What backs what", 1)[1]
    after_text = itertools.dropwhile(lambda line: not line.startswith("|"), section.splitlines())
    head, _, *rows = itertools.takewhile(lambda line: line.startswith("|"), after_text)

    def cells(line: str) -> list[str]:
        return [cell.strip().strip("`") for cell in re.split(r"(?<!\\)\|", line.strip().strip("|"))]

    return [dict(zip(cells(head), cells(row), strict=True)) for row in rows]


def run_all_scripts() -> dict[str, str]:
    """Each run_all step's script, from the command line it runs."""
    args = Namespace(data=Path("DATA"), out=Path("OUT"), mnist_dir=Path("MNIST"))
    return {
        name: next(part.removeprefix("benchmarks/") for part in cmd if part.startswith("benchmarks/"))
        for name, cmd in run_all.steps(args).items()
    }


def test_run_all_runs_exactly_the_tables_steps_in_its_order():
    rows = claim_table()
    assert len(rows) >= 10, rows
    assert tuple(dict.fromkeys(row["step"] for row in rows)) == run_all.STEP_NAMES
    assert tuple(run_all_scripts()) == run_all.STEP_NAMES


def test_each_step_runs_the_script_the_table_names():
    scripts = run_all_scripts()
    for row in claim_table():
        assert row["script"].split()[0] == scripts[row["step"]], row
        assert (REPO / "benchmarks" / scripts[row["step"]]).is_file()


def test_every_results_file_is_in_the_table_and_every_block_is_on_a_page():
    rows = claim_table()
    named = {name.strip().strip("`") for row in rows for name in row["results file"].split(",")}
    on_disk = {path.name for path in (REPO / "benchmarks" / "results").iterdir() if path.is_file()}
    assert on_disk <= named, f"results files that no claim names: {sorted(on_disk - named)}"
    pages = "".join((REPO / "docs" / page).read_text() for page in ("performance.md", "scaling.md"))
    for block in {row["docs block"] for row in rows}:
        assert f"<!-- BEGIN generated: {block} -->" in pages, block
