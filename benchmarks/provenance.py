"""Where a benchmark figure came from: command, date, machine, versions, and the machine's load.

Every results/*.json written by mllib_mlpc.py and memory.py carries this record, so a table
rendered from it (benchmarks/docs.py) can say how it was measured and under what load; the
machine has 2 cores that other work may share, so os.getloadavg() is kept before and after runs.
"""

from __future__ import annotations

import os
import platform
import sys
import time


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded to 2 decimals."""
    return [round(x, 2) for x in os.getloadavg()]


def command_line(script: str, argv: list[str] | None = None) -> str:
    """`python benchmarks/SCRIPT args...` as it was typed (argv defaults to sys.argv[1:])."""
    return " ".join(["python", f"benchmarks/{script}", *(sys.argv[1:] if argv is None else argv)])


def machine() -> dict:
    """Cores, CPU model and memory of this machine, from /proc where Linux has it."""
    out = {"cores": os.cpu_count(), "platform": platform.platform(), "cpu": platform.processor() or None}
    try:
        with open("/proc/cpuinfo") as f:
            out["cpu"] = next(
                (line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), out["cpu"]
            )
        with open("/proc/meminfo") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
            out["memory_bytes"] = kb * 1024
    except (OSError, StopIteration, ValueError):
        pass
    return out


def provenance(script: str, argv: list[str] | None = None) -> dict:
    """The record every results JSON starts with; add the load after the run yourself."""
    import numpy as np

    try:
        import pyspark

        spark = pyspark.__version__
    except ImportError:
        spark = None
    return {
        "command": command_line(script, argv),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine(),
        "versions": {"python": platform.python_version(), "numpy": np.__version__, "spark": spark},
        "loadavg_before": loadavg(),
    }
