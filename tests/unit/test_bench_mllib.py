"""benchmarks/mllib_mlpc.py: when the schedule of one-fit processes stops, and why."""

import sys
from argparse import Namespace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
mllib = pytest.importorskip("mllib_mlpc")

ARGS = Namespace(target_accuracy=0.97, budget_seconds=1000.0)


def row(max_iter, iterations=None, acc=0.9, wall=120.0, fit=100.0, status="ok"):
    return {
        "max_iter": max_iter,
        "iterations": max_iter if iterations is None else iterations,
        "test_accuracy": acc,
        "wall_seconds": wall,
        "fit_seconds": fit,
        "status": status,
    }


def test_goes_on_while_the_next_fit_fits_the_budget():
    # next fit: 20 s of start-up and preparation + 2 x 100 s of fitting = 220 s; 120 + 220 <= 1000
    assert mllib.stop_reason([row(25)], 50, 120.0, ARGS) is None


def test_stops_when_the_next_fit_would_overrun_the_budget():
    why = mllib.stop_reason([row(25), row(50, wall=420.0, fit=400.0)], 100, 540.0, ARGS)
    # predicted 420 + 400 = 820 s, 460 s left
    assert why == "budget: the fit with maxIter=100 predicted 820 s, 460 s left"


@pytest.mark.parametrize(
    "last, expected",
    [
        (row(50, acc=0.971), "reached target accuracy 0.97"),
        (row(50, iterations=37), "converged after 37 iterations"),
        (row(50, status="failed"), "fit with maxIter=50 failed"),
    ],
)
def test_stops_early(last, expected):
    assert mllib.stop_reason([last], 100, 10.0, ARGS) == expected


def test_stops_after_the_last_fit_of_the_schedule():
    assert mllib.stop_reason([row(100)], None, 10.0, ARGS) == "schedule done"
