"""The round channel: ZeroMQ between the driver and its workers. No Spark here.

The driver binds one ROUTER socket; each worker connects one DEALER socket for the whole run
and says hello. A round is one multipart message each way: [kind, JSON metadata, the float32
vector], the vector sent and received without a copy. ZeroMQ was measured against Arrow
Flight for exactly this exchange (benchmarks/channels.py): half the time a round.

Every connection must present this run's secret (ZeroMQ's PLAIN mechanism, checked by a ZAP
handler in the driver); a connection without it is refused during the handshake and none of
its messages reach the driver. The secret travels to the workers inside the Spark task,
never on a command line or in a log. PLAIN does not encrypt: the channel carries parameters
and gradient sums, never rows.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict

import numpy as np
import zmq
import zmq.auth.thread

from dist_mnist.rounds import RoundResult, RoundSpec
from dist_mnist.worker_errors import USER_ERROR_TYPES, WorkerError

USER = b"dist-mnist"
EMPTY = np.zeros(0, np.float32)
IO_THREADS = 2  # sends to several workers at once (measured: 6.3 ms a sync round against 6.9 with one)


def encode_result(r: RoundResult) -> bytes:
    """A result's small fields as JSON (the sums travel as their own frame)."""
    return json.dumps({"loss": r.loss, "n": r.n, "seconds": {str(k): v for k, v in r.seconds.items()},
                       "resident_bytes": r.resident_bytes,
                       "confusion": None if r.confusion is None else r.confusion.tolist()}).encode()


def decode_result(sums: np.ndarray, meta: bytes) -> RoundResult:
    """The RoundResult of a received vector and its metadata."""
    m = json.loads(meta)
    confusion = None if m["confusion"] is None else np.asarray(m["confusion"], np.int64)
    return RoundResult(sums, m["loss"], m["n"], {int(k): v for k, v in m["seconds"].items()},
                       m["resident_bytes"], confusion)


def _vector(frame: zmq.Frame) -> np.ndarray:
    """A received float32 vector: a read-only view of the frame, no copy."""
    vec = np.frombuffer(frame.buffer, np.float32)
    vec.setflags(write=False)
    return vec


class RoundServer:
    """The driver's end. Not thread-safe: one thread sends rounds and polls for events.

    poll() returns ("hello", generation, w, info), ("result", generation, w, (sums, meta)) or
    ("error", generation, w, {"error": message, "type": name}); None when nothing came in time.
    """

    def __init__(self, host: str, port: int, secret: str, workers: int):
        self.workers = workers
        self.generation = 0
        self.ctx = zmq.Context(io_threads=IO_THREADS)
        # the ZAP handler; its logger is kept above DEBUG, where pyzmq would print passwords
        log = logging.getLogger("dist_mnist.channel.zap")
        log.setLevel(logging.INFO)
        self.auth = zmq.auth.thread.ThreadAuthenticator(self.ctx, log=log)
        self.auth.start()
        self.auth.configure_plain(domain="*", passwords={USER.decode(): secret})
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.plain_server = True
        self.sock.linger = 0
        self.sock.router_mandatory = True  # a send to a gone worker raises instead of vanishing
        self.sock.router_handover = True  # a relaunched task takes its worker's identity over
        if port:
            self.sock.bind(f"tcp://{host}:{port}")
            self.port = port
        else:
            self.port = self.sock.bind_to_random_port(f"tcp://{host}")

    def start_generation(self, generation: int) -> None:
        """Answer only workers of this generation from now on; older ones are told to stop."""
        self.generation = generation

    def send(self, w: int, flat: np.ndarray, spec: RoundSpec) -> None:
        """One round to worker w of the current generation (`flat` must not change until it answers)."""
        self.sock.send_multipart([self._identity(self.generation, w), b"round", json.dumps(asdict(spec)).encode(),
                                  np.ascontiguousarray(flat, np.float32)], copy=False)

    def stop_workers(self) -> None:
        """Tell every worker of the current generation to finish its task."""
        for w in range(self.workers):
            self._stop(self.generation, w)

    def poll(self, timeout: float):
        """The next event within `timeout` seconds, or None."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not self.sock.poll(max(1, int(1000 * left))):
                return None
            identity, kind, meta, payload = self.sock.recv_multipart(copy=False)
            generation, w = (int(x) for x in identity.bytes.split(b":"))
            if generation != self.generation:
                if kind.bytes == b"hello":
                    self._stop(generation, w)  # a late task of an earlier generation
                continue
            if kind.bytes == b"hello":
                return "hello", generation, w, json.loads(meta.bytes)
            if kind.bytes == b"error":
                return "error", generation, w, json.loads(meta.bytes)
            return "result", generation, w, (_vector(payload), meta.bytes)

    @staticmethod
    def _identity(generation: int, w: int) -> bytes:
        return f"{generation}:{w}".encode()

    def _stop(self, generation: int, w: int) -> None:
        try:
            self.sock.send_multipart([self._identity(generation, w), b"stop", b"", b""])
        except zmq.ZMQError:  # that worker is not connected (any more)
            pass

    def shutdown(self) -> None:
        self.sock.close(linger=0)
        self.auth.stop()
        self.ctx.term()


def serve_rounds(address: str, secret: str, hello: dict, compute) -> None:
    """The worker's end: connect, say hello, then answer rounds with compute(flat, spec) ->
    RoundResult until the driver says stop. An exception in compute is sent back, then raised,
    unless it is a user error (bad data), which fails the round, not the task."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.identity = f"{hello['generation']}:{hello['worker']}".encode()
    if secret:  # without one the connection uses no mechanism, and the driver refuses it
        sock.plain_username, sock.plain_password = USER, secret.encode()
    sock.linger = 1000
    try:
        sock.connect(address)
        sock.send_multipart([b"hello", json.dumps(hello).encode(), b""])
        while True:
            kind, meta, payload = sock.recv_multipart(copy=False)
            if kind.bytes == b"stop":
                break
            try:
                result = compute(_vector(payload), RoundSpec(**json.loads(meta.bytes)))
            except Exception as e:
                error = WorkerError.of(e)  # a ValueError's subclass (ArrowInvalid) is sent as a ValueError
                sock.send_multipart([b"error", json.dumps({"error": error.message, "type": error.kind}).encode(), b""])
                if isinstance(e, USER_ERROR_TYPES):
                    continue  # bad data: the driver raises it and says stop; the task ends cleanly, unretried
                raise
            sock.send_multipart([b"result", encode_result(result), np.ascontiguousarray(result.sums, np.float32)],
                                copy=False)
    finally:
        sock.close()
        ctx.term()
