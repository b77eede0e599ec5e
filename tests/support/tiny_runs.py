"""Tiny training runs through the command line, in process (transport "inprocess": no JVM).

256 training rows, batch 32, 2 workers in sync mode: 8 rounds an epoch, 2 epochs, a checkpoint
every 3 rounds and at each epoch's end. A run takes a fraction of a second.
"""

from __future__ import annotations

from pathlib import Path

from dist_mnist.cli import commands as cli

from .datasets import write_dataset
from .fakes import learnable

TINY = [
    "layer_sizes=[784, 16, 10]",
    "mode=sync",
    "batch_size=32",
    "epochs=2",
    "workers=2",
    "transport=inprocess",
    "checkpoint_every_rounds=3",
]


def tiny_data(root: Path) -> Path:
    """DATA/train (256 rows, 2 parts) and DATA/test (64 rows) in the project's Parquet layout."""
    return write_dataset(root, learnable(256, seed=0), learnable(64, seed=1), 2)


def train_cli(data: Path | str, run: Path | str, *extra: str, sets: list[str] = ()) -> int:
    """`dist-mnist train --data DATA --out RUN` with the tiny config, `sets` after it, then `extra`."""
    argv = ["train", "--data", str(data), "--out", str(run)]
    for item in [*TINY, *sets]:
        argv += ["--set", item]
    return cli.main([*argv, *extra])


def interrupt_at_round(monkeypatch, n: int) -> None:
    """A Ctrl-C inside the round loop at its n-th round (as a second Ctrl-C lands)."""
    from dist_mnist.driver import loop

    real, seen = loop.apply_round, []

    def apply_round(*args, **kwargs):
        seen.append(1)
        if len(seen) == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "apply_round", apply_round)
