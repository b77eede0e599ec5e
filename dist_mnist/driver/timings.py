"""What a run measures about itself: each round's time by part, and this process's phases.

Both go to metrics.json's "rounds" block. RoundTimings is saved in checkpoints, so a resumed
run goes on counting; Phases are this process's own (a resumed run starts its own).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from dist_mnist.rounds import RoundResult

PARTS = ("executor", "straggler", "overhead", "update")  # a round's time, summed over rounds


@dataclass
class RoundTimings:
    """Seconds summed over rounds. executor: the workers' mean compute; straggler: how much
    longer the slowest worker took; overhead: the round's wall time outside the slowest
    worker's compute (sending, scheduling, combining), also kept per round so its median
    compares with the bare-round floor; update: the driver's step."""

    rounds: int = 0
    executor: float = 0.0
    straggler: float = 0.0
    overhead: float = 0.0
    update: float = 0.0
    overhead_ms: list[float] = field(default_factory=list)
    shard_bytes: int = 0  # the workers' shard memory (PSS), measured in evaluation rounds

    def record(self, result: RoundResult, wall: float, update: float) -> None:
        """Add one round: its wall time (send to combined result) and the update's."""
        seconds = np.array(list(result.seconds.values()) or [0.0])
        overhead = max(0.0, wall - float(seconds.max()))
        self.executor += float(seconds.mean())
        self.straggler += float(seconds.max() - seconds.mean())
        self.overhead += overhead
        self.update += update
        self.rounds += 1
        self.overhead_ms.append(round(1000 * overhead, 3))
        if result.shard_bytes:  # reading /proc costs milliseconds: evaluation rounds only
            self.shard_bytes = int(result.shard_bytes)

    def summary(self) -> dict:
        """Totals and means a round of each part, the rounds, and the overhead's medians (the
        first round also starts the workers and loads the shards)."""
        n = max(self.rounds, 1)
        out: dict = {k: {"total_seconds": getattr(self, k), "mean_ms": 1000 * getattr(self, k) / n} for k in PARTS}
        out["rounds"] = self.rounds
        ms = self.overhead_ms
        out["overhead_ms"] = {
            "median": float(np.median(ms)) if ms else 0.0,
            "first_round": ms[0] if ms else 0.0,
            "median_after_first": float(np.median(ms[1:])) if ms[1:] else 0.0,
        }
        return out

    def to_dict(self) -> dict:
        """For a checkpoint's JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RoundTimings:
        """A checkpoint's timings (older checkpoints kept more keys in the same object: ignored)."""
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})


class Phases:
    """This process's wall time by phase, nanoGPT-style: mark() closes the phase since the last mark."""

    def __init__(self) -> None:
        self.start = self._last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def mark(self, name: str) -> None:
        """End phase `name` now and start the next; a name already marked is left as it was."""
        if name in self.seconds:
            return
        now = time.perf_counter()
        self.seconds[name] = now - self._last
        self._last = now

    def elapsed(self) -> float:
        """Seconds since the run started."""
        return time.perf_counter() - self.start

    def line(self) -> str:
        """The phases as the run prints them at its end."""
        return "phases (s): " + ", ".join(f"{k} {v:.2f}" for k, v in self.seconds.items())
