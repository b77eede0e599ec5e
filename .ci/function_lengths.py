"""Fail when a function in the given directories is longer than --max lines (`make lint`).

A function's length counts from its `def` line to its last line (decorators not counted,
nested functions inside it counted). Usage: python .ci/function_lengths.py dist_mnist --max 60
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def long_functions(root: Path, limit: int) -> list[str]:
    """'path:line name: N lines' for every function under `root` longer than `limit` lines."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    found.append(f"{path}:{node.lineno} {node.name}: {lines} lines")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("roots", nargs="+", type=Path, help="directories to check")
    parser.add_argument("--max", type=int, default=60, help="the longest a function may be (default 60)")
    args = parser.parse_args()
    found = [line for root in args.roots for line in long_functions(root, args.max)]
    for line in found:
        print(f"{line} (the limit is {args.max}: split it by concern)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
