"""benchmarks/speed.py's verdicts: each pair's ratio is to the faster PyTorch script of that pair,
and the medians and targets follow from the runs (as `speed.py --summarize` derives them)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import speed

import docs


def _run(name: str, seconds: float, status: str = "ok", load: float = 0.5) -> dict:
    return {
        "system": name,
        "status": status,
        "process_seconds": seconds,
        "train_seconds": seconds - 5,
        "accuracy": 0.9716,
        "loadavg_before": [load, 1.0, 1.0],
    }


def _system(seconds: float) -> dict:
    return {
        **_run("default", seconds),
        "accuracy": 0.9745,
        "phases_seconds": {"rounds": 16.0},
        "round_ms": {"executor": 1100.0, "overhead": 50.0, "update": 5.0},
    }


def _pair(i: int, reference: float, plain: float, numpy_s: float, system: float, plain_status: str = "ok") -> dict:
    return {
        "pair": i,
        "pytorch": _run("pytorch", reference),
        "peers": {"pytorch-plain": _run("pytorch-plain", plain, plain_status), "numpy": _run("numpy", numpy_s)},
        "system": _system(system),
    }


def test_a_pairs_ratio_is_to_the_faster_pytorch_script_and_the_median_decides():
    pairs = [
        _pair(1, 40.0, 32.0, 24.0, 30.0),
        _pair(2, 30.0, 36.0, 25.0, 27.0),
        _pair(3, 50.0, 0.0, 30.0, 40.0, "failed"),
    ]
    s = speed.summarize("default", pairs)
    assert [p["fastest_pytorch"] for p in s["pairs"]] == ["pytorch-plain", "pytorch", "pytorch"]
    assert [p["ratio"] for p in s["pairs"]] == [0.938, 0.9, 0.8]  # 30/32, 27/30, 40/50 (the plain run failed)
    assert s["median_ratio"] == 0.9 and s["target_met"] is False  # against <= 0.6x
    assert s["median_pytorch_seconds"] == 32.0  # the faster script's seconds, pair by pair
    assert s["peers"]["numpy"]["median_ratio"] == 1.25 and s["peers"]["pytorch-plain"]["pairs_ok"] == 2
    sync = speed.summarize("sync", [_pair(1, 40.0, 35.0, 30.0, 50.0)])
    assert sync["median_ratio"] == 1.429 and sync["target_met"] is True  # 50/35 against <= 1.5x
    assert s["pairs_busy"] == 0 and sync["pairs_busy"] == 0


def test_the_speed_block_names_the_faster_script_and_the_cross_checks():
    doc = {
        "date": "2026-12-01 13:42",
        "command": "python benchmarks/speed.py --pairs 2",
        "machine": "2 cores",
        "idle_below": 1.0,
        "systems": {
            "default": speed.summarize(
                "default", [{**_pair(1, 40.0, 32.0, 24.0, 30.0), "order": ["pytorch", "pytorch-plain", "numpy"]}]
            )
        },
    }
    text = docs.speed_block(doc)
    assert "the ratio is dist-mnist / the faster of the two PyTorch scripts within the pair" in text
    assert "which script runs first rotates from pair to pair" in text
    assert "| default | 1 | torch_plain.py | 0.50 | 32.0 | 0.50 | 30.0 | 97.16%, 97.45% | 0.94x |" in text
    assert "benchmarks/numpy_reference.py) | 1 | 24.0 | 19.0 | 97.16% | 1.25x |" in text
    assert "Each run began only once the 1-minute load average was below 1" in text


def test_no_table_from_a_pair_begun_on_a_busy_machine_or_without_the_idle_wait():
    busy = _pair(2, 30.0, 36.0, 25.0, 27.0)
    busy["system"]["loadavg_before"][0] = 1.7  # the dist-mnist run of pair 2 began with other work running
    summary = speed.summarize("default", [_pair(1, 40.0, 32.0, 24.0, 30.0), busy])
    assert [p["busy"] for p in summary["pairs"]] == [False, True] and summary["pairs_busy"] == 1
    doc = {"date": "2026-12-08 03:06", "command": "c", "machine": "2 cores", "idle_below": 1.0}
    text = docs.speed_block({**doc, "systems": {"default": summary}})
    assert text.startswith("Not rendered:") and "default pair 2" in text and "| default |" not in text
    old = {k: v for k, v in doc.items() if k != "idle_below"}
    assert "before speed.py waited for an idle machine" in docs.speed_block({**old, "systems": {"default": summary}})


def test_the_idle_wait_gives_up_after_its_bound_and_says_so(monkeypatch):
    monkeypatch.setattr(speed.os, "getloadavg", lambda: (1.8, 1.5, 1.2))
    monkeypatch.setattr(speed.time, "sleep", lambda s: None)
    monkeypatch.setitem(speed.IDLE, "wait", 0.0)
    got = speed.wait_for_idle()
    assert got["idle"] is False and got["loadavg_before"][0] == 1.8
