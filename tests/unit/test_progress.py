"""Progress: plain lines off a terminal, a bar and epoch summaries on one (a real pseudo-terminal)."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from dist_mnist.driver.progress import Progress, close_bars

EPOCHS, ROUNDS = 2, 5


def fake_run(progress: Progress) -> None:
    """The trainer's calls for EPOCHS epochs of ROUNDS rounds, with the side evaluation's line."""
    for epoch in range(1, EPOCHS + 1):
        for r in range(1, ROUNDS + 1):
            if epoch > 1 and r == 1:
                progress.line(f"epoch {epoch - 1} test accuracy 0.9{epoch - 1:03d}")
            progress.round((epoch - 1) * ROUNDS + r, epoch, EPOCHS, r, ROUNDS, 1.0 / r, 1000.0)


# run in a child whose stdout is the pseudo-terminal's slave: Progress decides by sys.stdout
CHILD = f"""
import functools, sys
sys.path.insert(0, {os.getcwd()!r})
from tests.unit.test_progress import fake_run
from dist_mnist.driver.progress import Progress, close_bars
fake_run(Progress({EPOCHS * ROUNDS}, 2, functools.partial(print, flush=True)))
print("final test accuracy 0.9500", flush=True)
"""


def test_a_custom_log_gets_plain_lines():
    lines: list[str] = []
    fake_run(Progress(EPOCHS * ROUNDS, 2, lines.append))
    assert any("epoch 1/2 round 5/5 loss" in line and "samples/s ETA" in line for line in lines)
    assert any(line.endswith("epoch 1 test accuracy 0.9001") for line in lines)
    assert not any("\r" in line or "\x1b" in line for line in lines)


def test_not_a_terminal_prints_todays_plain_lines():
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True).stdout
    assert "\r" not in out and "\x1b" not in out
    lines = out.splitlines()
    rounds = [line for line in lines if " round " in line]
    assert len(rounds) == 6  # rounds 2 and 4 (every 2) and 5 (the last of an epoch), twice
    assert rounds[0].startswith("[") and "s] epoch 1/2 round 2/5 loss 0.5000 1,000 samples/s ETA 0:0" in rounds[0]


def test_a_terminal_shows_a_bar_and_one_summary_per_epoch():
    master, slave = pty.openpty()
    fcntl.ioctl(
        slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0)
    )  # a new pty is 0 x 0; tqdm fits its width
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=slave, stderr=subprocess.PIPE, env={**os.environ, "TQDM_MININTERVAL": "0"}
    )  # draw every round of the fast fake loop
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert child.wait(timeout=30) == 0, child.stderr.read()
    out = b"".join(chunks).decode()
    assert "\r" in out and "epoch 1/2:" in out and "round/s" in out and "100%" in out  # tqdm's bar text
    assert "loss 0.2000, 1,000 samples/s" in out  # the bar's postfix
    lines = [line.split("\r")[-1] for line in out.replace("\r\n", "\n").split("\n")]  # what the terminal keeps
    summaries = [line for line in lines if "] epoch " in line and "round" not in line]
    assert len(summaries) == 2, summaries
    assert "epoch 1/2: loss 0.2000, test accuracy 0.9001, " in summaries[0] and summaries[0].endswith(" s")
    assert "epoch 2/2: loss 0.2000, " in summaries[1] and "accuracy" not in summaries[1]  # known only later
    assert not any("test accuracy 0.9001" in line and "epoch 1 " in line for line in lines)  # merged, not repeated


def test_close_bars_erases_a_bar_left_by_an_error(capsys):
    # the CLI calls close_bars() before it prints an error's line
    lines: list[str] = []
    progress = Progress(EPOCHS * ROUNDS, 2, lines.append, bar=True)
    for r in range(1, ROUNDS + 1):  # epoch 1 ends: its summary waits for the test accuracy
        progress.round(r, 1, EPOCHS, r, ROUNDS, 0.5, 1000.0)
    progress.round(ROUNDS + 1, 2, EPOCHS, 1, ROUNDS, 0.5, 1000.0)  # no accuracy came: printed now
    progress.round(ROUNDS + 2, 2, EPOCHS, 2, ROUNDS, 0.5, 1000.0)  # then the run fails mid-epoch
    assert progress.bar is not None
    close_bars()
    assert progress.bar is None
    assert any("] epoch 1/2: loss 0.5000, " in line for line in lines)
    out = capsys.readouterr().out  # the bar: drawn, then erased (tqdm's leave=False)
    assert "epoch 2/2:" in out and out.endswith("\r") and out.rsplit("\r", 2)[-2].strip() == ""


def test_an_interrupt_carries_what_it_left_as_fields(tmp_path, monkeypatch):
    """Code reads where the checkpoint is and whether training had started from the exception,
    never from its message: before the first checkpoint nothing is left, after it RUN.partial."""
    from dist_mnist.config import load_config
    from dist_mnist.driver import train
    from dist_mnist.driver.progress import Interrupted

    from ..support.tiny_runs import TINY, interrupt_at_round, tiny_data

    data, run = tiny_data(tmp_path / "data"), tmp_path / "RUN"
    config = load_config(None, TINY)
    interrupt_at_round(monkeypatch, 2)  # round 2: before the first checkpoint (every 3 rounds)
    with pytest.raises(Interrupted) as first:
        train(None, config, str(data), run, log=lambda line: None)
    assert (first.value.checkpoint, first.value.started) == (None, True)
    assert str(first.value) == "interrupted before the first checkpoint; nothing was written"
    interrupt_at_round(monkeypatch, 5)  # after the checkpoint of round 3
    with pytest.raises(Interrupted) as second:
        train(None, config, str(data), run, log=lambda line: None)
    assert (second.value.checkpoint, second.value.started) == (tmp_path / "RUN.partial", True)
    assert (tmp_path / "RUN.partial" / "checkpoint.npz").is_file()
