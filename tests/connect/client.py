"""What the Connect tests share on the client side: the small sync run they train, and the
environment of a classic child process (this pytest process is a Connect client)."""

from __future__ import annotations

import os

from dist_mnist.config import TrainConfig

SYNC = TrainConfig(layer_sizes=(784, 32, 10), batch_size=64, epochs=2, mode="sync", workers=2, max_rounds=6)
CONNECT_ENV = ("SPARK_CONNECT_MODE_ENABLED", "SPARK_REMOTE", "SPARK_LOCAL_REMOTE")


def classic_env(**extra: str) -> dict[str, str]:
    """os.environ without the variables that make a process a Connect client, and `extra`."""
    return {**{k: v for k, v in os.environ.items() if k not in CONNECT_ENV}, **extra}
