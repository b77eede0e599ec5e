"""What a worker is given to reach the driver's end of the round channel (dist_mnist.channel).

An Endpoint travels in the Spark task's closure; the CURVE keys in it are in no repr and never
on a command line, in a log or in a file."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class WorkerKeys:
    """One worker's CURVE keys (Z85 text): the driver's public key and the worker's pair."""

    server_public: bytes
    public: bytes
    secret: bytes = field(repr=False)
    peer_public: bytes = b""  # the server key of this worker's chain listener (reduce = "chain"; channel.chain)
    peer_secret: bytes = field(default=b"", repr=False)


@dataclass(frozen=True)
class Endpoint:
    """How a worker reaches the driver; travels in the Spark task's closure, its keys in no repr."""

    address: str  # tcp://HOST:PORT or ipc:///DIR/rounds
    run: str  # this run's id (not a secret)
    chunk: int  # bytes of a vector's frame
    max_frame: int  # bytes
    keys: tuple[WorkerKeys, ...] = field(default=(), repr=False)  # per worker on tcp; none on ipc
    shm: str = ""  # ipc: the private /dev/shm directory the vectors go through ("": in the frames)
