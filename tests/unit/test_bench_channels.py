"""benchmarks/docs.py's table of what the round channel costs, from benchmarks/channels.py's JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import docs


def _kind(ms):
    return {"median_ms": ms, "p90_ms": ms + 1, "min_ms": ms - 1, "rounds": 400}


RESULT = {
    "command": "python benchmarks/channels.py --rounds 400",
    "date": "2026-11-29 10:00",
    "machine": {"cores": 2},
    "loadavg_before": [3.5, 2.0, 1.0],
    "loadavg_after": [1.0, 1.0, 1.0],
    "workers": 2,
    "rounds": 400,
    "blocks": 4,
    "sizes": {
        "sync": {
            "bytes_each_way": 3_180_040,
            "plain": _kind(4.0),
            "curve": _kind(20.0),
            "ipc": _kind(3.0),
            "ipc-frames": _kind(5.0),
            "ratio_ipc-frames_to_plain": 1.25,
            "flight": _kind(9.5),  # results/channels.json still holds a kind the project no longer has
            "ratio_curve_to_plain": 5.0,
            "ratio_ipc_to_plain": 0.75,
            "ratio_flight_to_plain": 2.375,
        },
        "average": {
            "bytes_each_way": 6_360_080,
            "plain": _kind(8.0),
            "curve": _kind(40.0),
            "ipc": _kind(6.0),
            "ratio_curve_to_plain": 5.0,
            "ratio_ipc_to_plain": 0.75,
        },
    },
}


def test_the_channels_table_gives_each_cost_and_its_ratio_to_plain():
    text = docs.channels_block(RESULT)
    assert "| CURVE over TCP: a cluster | 20.0 ms (21.0) | 5.00x | 40.0 ms (41.0) | 5.00x |" in text
    assert (
        "| Unix socket + vectors through /dev/shm: a local master | 3.0 ms (4.0) | 0.75x | 6.0 ms (7.0) | 0.75x |"
        in text
    )
    # a size measured without a kind shows a dash
    assert (
        "| Unix socket, vectors in its frames: a local master without room in /dev/shm | 5.0 ms (6.0) | 1.25x | - | - |"
        in text
    )
    assert "9.5 ms" not in text  # the retired kind is not rendered
    assert "CURVE costs a round more than PLAIN by 16.0 ms in sync mode, 32.0 ms in average mode" in text
    assert "load average reached 3.50 on 2 cores" in text
