"""The worker's end of the round channel: connect, say hello, answer rounds until told to stop.

Runs in a barrier task on an executor (dist_mnist.spark.barrier_tasks) and in the tests' threads.
Over TCP it speaks CURVE with its worker's keys, never in clear; on a Unix socket the vectors
are read and written in place in the shared files of its generation (channel.shm). No Spark here."""

from __future__ import annotations

import json

import numpy as np
import zmq

from dist_mnist.channel import shm as channel_shm
from dist_mnist.channel.endpoint import Endpoint
from dist_mnist.channel.messages import encode_result, joined
from dist_mnist.rounds import RoundSpec
from dist_mnist.worker_errors import USER_ERROR_TYPES, WorkerError


def serve_rounds(endpoint: Endpoint, hello: dict, compute, deliver=None) -> None:
    """The worker's end: connect, say hello, then answer rounds with compute(flat, spec) ->
    RoundResult until the driver says stop. An exception in compute is sent back, then raised,
    unless it is a user error (bad data), which fails the round, not the task.
    deliver(sock, result, answer) -> bool, if given, sends the result instead (the chain reduce,
    chain.PeerLinks.deliver; False: the driver said stop meanwhile)."""
    generation, w = hello["generation"], hello["worker"]
    binding = {"run": endpoint.run, "generation": generation, "worker": w}
    shared = _SharedFiles(endpoint.shm, generation, w)
    ctx, sock = _worker_socket(endpoint, generation, w)
    try:
        sock.send_multipart([b"hello", json.dumps({**hello, **binding}).encode()])
        while True:
            frames = sock.recv_multipart(copy=False)
            kind, meta = frames[0].bytes, json.loads(frames[1].bytes)
            if any(meta.get(k) != v for k, v in binding.items()):
                continue  # not for this worker of this run and generation
            if kind == b"stop":
                break
            answer = {**binding, "round": meta["round"]}
            try:
                flat = shared.params(int(meta["floats"])) if meta.get("shm") else _received(frames, meta, w)
                result = compute(flat, RoundSpec(**meta["spec"]))
            except Exception as e:
                error = WorkerError.of(e)  # a ValueError's subclass (ArrowInvalid) is sent as a ValueError
                sock.send_multipart(
                    [b"error", json.dumps({**answer, "error": error.message[:4000], "type": error.kind}).encode()]
                )
                if isinstance(e, (*USER_ERROR_TYPES, channel_shm.SharedMemoryGone)):
                    continue  # bad data, or no shared files: the driver says stop; the task ends cleanly, unretried
                raise
            if deliver is None:
                frames = encode_result(result, answer, endpoint.chunk, shared.sums())
                sock.send_multipart([b"result", *frames], copy=False)
            elif not deliver(sock, result, answer):
                break
    finally:
        sock.close()
        ctx.term()


def _received(frames: list, meta: dict, w: int) -> np.ndarray:
    """A round's vector from its frames (read-only)."""
    data = joined(frames[2:], 4 * int(meta["floats"]))
    if data is None:
        raise RuntimeError(f"worker {w}: a round's frames do not hold its {meta['floats']} floats")
    return data.view(np.float32)


class _SharedFiles:
    """A worker's maps of its generation's shared files (channel.shm), opened on first use."""

    def __init__(self, directory: str, generation: int, w: int):
        self.directory, self.generation, self.w = directory, generation, w
        self._params: np.ndarray | None = None
        self._sums: np.ndarray | None = None

    def params(self, floats: int) -> np.ndarray:
        """The round's vector, read in place (read-only)."""
        if not self.directory:
            raise RuntimeError(f"worker {self.w}: a round in shared memory, but this channel has none")
        if self._params is None:
            self._params = self._view(channel_shm.params_name(), False)
        if floats > len(self._params):
            raise RuntimeError(f"worker {self.w}: a round of {floats} floats, but its shared file holds fewer")
        return self._params[:floats]

    def sums(self) -> np.ndarray | None:
        """Where this worker's sums go (None: in the result's frames)."""
        if self.directory and self._sums is None:
            self._sums = self._view(channel_shm.sums_name(self.w), True)
        return self._sums

    def _view(self, name: str, writable: bool) -> np.ndarray:
        try:
            return channel_shm.view(self.directory, self.generation, name, writable)
        except OSError as e:
            raise channel_shm.SharedMemoryGone(f"worker {self.w}: {self.directory}: {e.strerror}") from None


def _worker_socket(endpoint: Endpoint, generation: int, w: int) -> tuple[zmq.Context, zmq.Socket]:
    """A worker's DEALER socket, connected (CURVE with worker w's keys over TCP; never in clear)."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.identity = f"{generation}:{w}".encode()
    sock.maxmsgsize = endpoint.max_frame
    sock.linger = 1000
    if endpoint.address.startswith("tcp://"):
        if not endpoint.keys:
            sock.close(0)
            ctx.term()
            raise RuntimeError(f"the round channel at {endpoint.address} has no CURVE keys; refusing a clear channel")
        keys = endpoint.keys[w]
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = keys.server_public, keys.public, keys.secret
    sock.connect(endpoint.address)
    return ctx, sock


def probe(endpoint: Endpoint, seconds: float) -> bool:
    """From an executor: whether the driver's end answers a hello within `seconds` (the whole
    CURVE handshake, so only a peer holding this run's keys can pass; worker 0, generation 0)."""
    ctx, sock = _worker_socket(endpoint, 0, 0)
    try:
        binding = {"run": endpoint.run, "generation": 0, "worker": 0}
        sock.send_multipart([b"hello", json.dumps({**binding, "probe": True}).encode()])
        if not sock.poll(int(1000 * seconds)):
            return False
        return sock.recv_multipart()[0] == b"stop"
    finally:
        sock.close(0)
        ctx.term()
