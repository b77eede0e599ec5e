"""What a command printed and left behind: the one error line of a failed `dist-mnist` command,
the stderr of a command that started Spark, and snapshots of the files under a directory."""

from __future__ import annotations

import re
from pathlib import Path

# the warnings every Spark start prints: the JVM's incubator-module notice, Spark's WARN lines
SPARK_NOISE = re.compile(r"^(WARNING: Using incubator modules: |\d\d/\d\d/\d\d \d\d:\d\d:\d\d WARN \w+: )")


def one_line_error(capsys, command: str) -> str:
    """The single stderr line of a failed `dist-mnist <command>`, checked for no traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"dist-mnist {command}: error: ")
    return lines[0]


def error_lines(stderr: str) -> list[str]:
    """stderr without the warnings every Spark start prints (the JVM's incubator-module notice,
    Spark's WARN lines such as the loopback hostname); asserts no trace and no ERROR line."""
    for mark in ("Traceback", "ERROR", "\tat ", "Exception", "py4j"):
        assert mark not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if line.strip() and not SPARK_NOISE.match(line)]


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes, to prove nothing changed."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
