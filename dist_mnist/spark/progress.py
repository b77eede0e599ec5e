"""What the user sees while the driver trains: progress lines, and a Ctrl-C that stops cleanly."""

from __future__ import annotations

import signal
import threading
import time


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    """Plain lines (no carriage returns), so a terminal and a CI log read the same."""

    def __init__(self, total_rounds: int, every: int, log=print):
        self.total, self.every, self.log = total_rounds, max(1, every), log
        self.start = time.perf_counter()
        self.done_at_start = None

    def round(self, global_round: int, epoch: int, epochs: int, r: int, rounds: int, loss: float, samples_per_s: float) -> None:
        """Report after a round, every `every` rounds and at the last round of an epoch."""
        if self.done_at_start is None:
            self.done_at_start = global_round - 1
        if global_round % self.every and r != rounds:
            return
        elapsed = time.perf_counter() - self.start
        done = global_round - self.done_at_start
        eta = elapsed / done * (self.total - global_round) if done else 0
        self.line(f"epoch {epoch}/{epochs} round {r}/{rounds} loss {loss:.4f} "
                  f"{samples_per_s:,.0f} samples/s ETA {_clock(eta)}")

    def line(self, text: str) -> None:
        """One line, prefixed with the elapsed time."""
        self.log(f"[{time.perf_counter() - self.start:6.1f}s] {text}")


class GracefulStop:
    """First Ctrl-C: finish the round, checkpoint, stop. A second one stops at once.

    PySpark's own SIGINT handler cancels the running job in the middle of a Py4J call, which
    leaves tracebacks behind; the driver's loop is the better place to stop.
    """

    def __init__(self, notify):
        self.notify, self.requested, self.previous = notify, False, None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        self.notify()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)
            self.previous = None
