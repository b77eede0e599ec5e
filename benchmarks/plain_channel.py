"""An unencrypted ZeroMQ round channel (PLAIN), reduced to what benchmarks/channels.py times:
the baseline of its figures. Not for use on a network.

The driver binds one ROUTER socket (2 I/O threads); each worker connects one DEALER socket and
says hello. A round is one multipart message each way: [kind, JSON metadata, the float32
vector in one frame], sent and received without a copy. Every connection presents the run's
secret with ZeroMQ's PLAIN mechanism, checked by pyzmq's ZAP handler: PLAIN sends the secret
in clear and encrypts nothing, which is why dist_mnist.channel uses CURVE over TCP.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

import numpy as np
import zmq
import zmq.auth.thread

from dist_mnist.rounds import RoundResult, RoundSpec

USER = b"dist-mnist"


def encode_result(r: RoundResult) -> bytes:
    """A result's small fields as JSON (the sums travel as their own frame)."""
    return json.dumps(
        {
            "loss": r.loss,
            "n": r.n,
            "seconds": {str(k): v for k, v in r.seconds.items()},
            "shard_bytes": r.shard_bytes,
            "confusion": None if r.confusion is None else r.confusion.tolist(),
        }
    ).encode()


def decode_result(sums: np.ndarray, meta: bytes) -> RoundResult:
    """The RoundResult of a received vector and its metadata."""
    m = json.loads(meta)
    confusion = None if m["confusion"] is None else np.asarray(m["confusion"], np.int64)
    return RoundResult(
        sums, m["loss"], m["n"], {int(k): v for k, v in m["seconds"].items()}, m["shard_bytes"], confusion
    )


class RoundServer:
    """The driver's end: poll() returns ("hello" | "result", generation, w, info) or None."""

    def __init__(self, host: str, port: int, secret: str, workers: int):
        self.workers, self.generation = workers, 0
        self.ctx = zmq.Context(io_threads=2)
        log = logging.getLogger("plain_channel.zap")
        log.setLevel(logging.INFO)  # pyzmq prints passwords at DEBUG
        self.auth = zmq.auth.thread.ThreadAuthenticator(self.ctx, log=log)
        self.auth.start()
        self.auth.configure_plain(domain="*", passwords={USER.decode(): secret})
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.plain_server, self.sock.linger = True, 0
        self.port = self.sock.bind_to_random_port(f"tcp://{host}")

    def start_generation(self, generation: int) -> None:
        self.generation = generation

    def send(self, w: int, flat: np.ndarray, spec: RoundSpec) -> None:
        self.sock.send_multipart(
            [
                f"{self.generation}:{w}".encode(),
                b"round",
                json.dumps(asdict(spec)).encode(),
                np.ascontiguousarray(flat, np.float32),
            ],
            copy=False,
        )

    def stop_workers(self) -> None:
        for w in range(self.workers):
            self.sock.send_multipart([f"{self.generation}:{w}".encode(), b"stop", b"", b""])

    def poll(self, timeout: float):
        if not self.sock.poll(int(1000 * timeout)):
            return None
        identity, kind, meta, payload = self.sock.recv_multipart(copy=False)
        generation, w = (int(x) for x in identity.bytes.split(b":"))
        if kind.bytes == b"hello":
            return "hello", generation, w, json.loads(meta.bytes)
        return "result", generation, w, (np.frombuffer(payload.buffer, np.float32), meta.bytes)

    def shutdown(self) -> None:
        self.sock.close(linger=0)
        self.auth.stop()
        self.ctx.term()


def serve_rounds(address: str, secret: str, hello: dict, compute) -> None:
    """The worker's end: say hello, then answer rounds with compute(flat, spec) until told to stop."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.identity = f"{hello['generation']}:{hello['worker']}".encode()
    sock.plain_username, sock.plain_password = USER, secret.encode()
    try:
        sock.connect(address)
        sock.send_multipart([b"hello", json.dumps(hello).encode(), b""])
        while True:
            kind, meta, payload = sock.recv_multipart(copy=False)
            if kind.bytes == b"stop":
                break
            flat = np.frombuffer(payload.buffer, np.float32)
            result = compute(flat, RoundSpec(**json.loads(meta.bytes)))
            sock.send_multipart(
                [b"result", encode_result(result), np.ascontiguousarray(result.sums, np.float32)], copy=False
            )
    finally:
        sock.close(linger=1000)
        ctx.term()
