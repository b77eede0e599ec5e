"""What the user sees while the driver trains: progress lines, and a Ctrl-C that stops cleanly."""

from __future__ import annotations

import re
import signal
import sys
import threading
import time
import weakref
from functools import partial
from pathlib import Path

from tqdm import tqdm

from dist_mnist.hints import Log

_EPOCH_ACCURACY = re.compile(r"^epoch (\d+) test accuracy (\S+)$")  # the trainer's line after a side evaluation
_BARS: weakref.WeakSet = weakref.WeakSet()  # the Progress objects showing a bar now


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C, worded where it was caught: what it left and how to go on (exit status 130).

    checkpoint: RUN.partial where it holds a checkpoint that --resume continues, else None;
    started: whether training had started (its rounds had begun). The CLI prints the message;
    code that handles an interrupt reads the fields, never the text.
    """

    def __init__(self, message: str, checkpoint: Path | None = None, started: bool = False) -> None:
        super().__init__(message)
        self.checkpoint, self.started = checkpoint, started


def nothing_written(before: str, started: bool = False) -> Interrupted:
    """A Ctrl-C that stopped a run before it wrote anything: no RUN.partial is left."""
    return Interrupted(f"interrupted before {before}; nothing was written", None, started)


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def _prints_to_terminal(log: Log) -> bool:
    """Whether `log` is the default print (maybe with flush=True) and stdout is a terminal."""
    if isinstance(log, partial) and not log.args and set(log.keywords) <= {"flush"}:
        log = log.func
    isatty = getattr(sys.stdout, "isatty", None)
    return log is print and isatty is not None and isatty()


def close_bars() -> None:
    """Erase any bar still shown, before an error line is printed (the CLI calls this)."""
    for progress in list(_BARS):
        progress.close()


class Progress:
    """What a run shows while it trains.

    Not a terminal (CI, log files, spark-submit under a scheduler), or a custom `log`: plain
    timestamped lines, no carriage returns or escapes. A terminal, with the default print: a
    tqdm bar per epoch (rounds, loss, samples/s, ETA) and one summary line per epoch.
    """

    def __init__(self, total_rounds: int, every: int, log: Log = print, bar: bool | None = None):
        self.total, self.every, self.log = total_rounds, max(1, every), log
        self.start = time.perf_counter()
        self.done_at_start: int | None = None  # the rounds done before this process's first round
        self.use_bar = _prints_to_terminal(log) if bar is None else bar
        self.bar: tqdm | None = None  # the current epoch's tqdm bar
        self.epoch_start = self.start
        self.summary: tuple[int, str, str] | None = None  # a finished epoch's line, until its accuracy is known

    def round(
        self, global_round: int, epoch: int, epochs: int, r: int, rounds: int, loss: float, samples_per_s: float
    ) -> None:
        """Report after a round, every `every` rounds and at the last round of an epoch."""
        if self.done_at_start is None:
            self.done_at_start = global_round - 1
        done_at_start = self.done_at_start
        if self.use_bar:
            self._bar_round(global_round, epoch, epochs, r, rounds, loss, samples_per_s)
            return
        if global_round % self.every and r != rounds:
            return
        elapsed = time.perf_counter() - self.start
        done = global_round - done_at_start
        eta = elapsed / done * (self.total - global_round) if done else 0
        self.line(
            f"epoch {epoch}/{epochs} round {r}/{rounds} loss {loss:.4f} "
            f"{samples_per_s:,.0f} samples/s ETA {_clock(eta)}"
        )

    def line(self, text: str) -> None:
        """One line, prefixed with the elapsed time; it does not break a bar."""
        found = _EPOCH_ACCURACY.match(text) if self.summary else None
        if found and self.summary and int(found[1]) == self.summary[0]:
            self._flush_summary(f", test accuracy {found[2]}")
            return
        self._flush_summary()
        self._write(f"[{time.perf_counter() - self.start:6.1f}s] {text}")

    def close(self) -> None:
        """Erase the bar, if one is shown, and print a summary still waiting."""
        self._close_bar()
        self._flush_summary()

    def _bar_round(
        self, global_round: int, epoch: int, epochs: int, r: int, rounds: int, loss: float, samples_per_s: float
    ) -> None:
        self._flush_summary()  # the previous epoch's accuracy did not come with this round
        bar = self.bar
        if bar is None:
            bar = self.bar = tqdm(
                total=rounds,
                initial=r - 1,
                desc=f"epoch {epoch}/{epochs}",
                unit="round",
                file=sys.stdout,
                leave=False,
                dynamic_ncols=True,
            )
            _BARS.add(self)
        bar.set_postfix_str(f"loss {loss:.4f}, {samples_per_s:,.0f} samples/s", refresh=False)
        bar.update(r - bar.n)
        if r != rounds:
            return
        now = time.perf_counter()
        self.summary = (epoch, f"epoch {epoch}/{epochs}: loss {loss:.4f}", f"{now - self.epoch_start:.1f} s")
        self.epoch_start = now
        self._close_bar()
        if global_round >= self.total:  # the last round: its accuracy is the trainer's final line
            self._flush_summary()

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
            _BARS.discard(self)

    def _flush_summary(self, accuracy: str = "") -> None:
        """Print the waiting epoch summary: epoch, loss, test accuracy when known, wall seconds."""
        if self.summary is not None:
            (_, head, seconds), self.summary = self.summary, None
            self._write(f"[{time.perf_counter() - self.start:6.1f}s] {head}{accuracy}, {seconds}")

    def _write(self, text: str) -> None:
        if self.bar is not None:
            tqdm.write(text, file=sys.stdout)  # clears the bar, writes the line, draws the bar again
        else:
            self.log(text)


class GracefulStop:
    """First Ctrl-C: finish the round, checkpoint, stop. A second one stops at once.

    PySpark's own SIGINT handler cancels the running job in the middle of a Py4J call, which
    leaves tracebacks behind; the driver's loop is the better place to stop. While
    `abortable` is False a second Ctrl-C is ignored too (the JVM's start: interrupted, it
    would outlive this process). A handler installed over this one inside the block (the
    SparkContext's) is left in place on the way out.
    """

    def __init__(self, notify):
        self.notify, self.requested, self.previous = notify, False, None
        self.abortable = True

    def _handle(self, signum, frame):
        if self.requested:
            if self.abortable:
                raise KeyboardInterrupt
            return
        self.requested = True
        self.notify()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            if signal.getsignal(signal.SIGINT) == self._handle:
                signal.signal(signal.SIGINT, self.previous)
            self.previous = None
