"""The driver's end of the round channel: one ROUTER socket, rounds out, results in, everything else dropped.

RoundServer binds (tcp with CURVE and a ZAP guard, or ipc in a private directory with the
vectors in /dev/shm), sends each round to the workers of the current generation, and polls
for their hellos, results and errors, dropping and counting whatever does not answer the
round in flight. Not thread-safe: one thread sends and polls. No Spark here.
"""

from __future__ import annotations

import contextlib
import errno
import json
import secrets
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, replace

import numpy as np
import zmq
from zmq.utils import z85

from dist_mnist.channel import shm as channel_shm
from dist_mnist.channel.endpoint import Endpoint, WorkerKeys
from dist_mnist.channel.guard import HANDSHAKE_SECONDS, ChannelGuard, raise_open_files_limit
from dist_mnist.channel.messages import decode_result, frame_sizes, frames_of
from dist_mnist.hints import Log
from dist_mnist.rounds import RoundSpec

IO_THREADS = 2  # ZeroMQ's I/O threads: sends to several workers at once (benchmarks/channels.py times rounds with it)
RCVHWM = 4  # messages queued per worker connection; a worker sends one a round
NO_CURVE = "this libzmq has no CURVE encryption (zmq.has('curve') is False), and rounds never travel in clear over TCP"


class RoundServer:
    """The driver's end. Not thread-safe: one thread sends rounds and polls for events.

    poll() returns ("hello", generation, w, info), ("result", generation, w, RoundResult) or
    ("error", generation, w, {"error": message, "type": name}); None when nothing came in time.
    `dropped` counts the messages dropped, by reason.
    """

    def __init__(
        self,
        kind: str,
        host: str,
        port: int,
        workers: int,
        max_floats: int,
        n_classes: int,
        log: Log = print,
        bind_host: str | None = None,
        shared_memory: bool = True,
    ):
        if kind not in ("tcp", "ipc"):
            raise ValueError(f"channel kind must be 'tcp' or 'ipc', got {kind!r}")
        if kind == "tcp" and not zmq.has("curve"):
            raise RuntimeError(NO_CURVE)
        self.kind, self.workers = kind, workers
        self.run = secrets.token_hex(8)
        self.generation = self.round = 0
        self.answered: set[int] = set()  # workers that answered the round in flight
        self.sent_floats = 0
        self.received_bytes = 0  # every message's frames, over the run (benchmarks/reduce.py)
        self.dropped: Counter[str] = Counter()
        self.guard: ChannelGuard | None = None
        self.dir: str | None = None
        self.shm: str | None = None  # ipc: the vectors' directory on /dev/shm (channel.shm)
        self.shm_params: np.ndarray | None = None  # this generation's round vector, mapped writable
        self.shm_sums: list[np.ndarray] = []  # this generation's sums files, mapped read-only
        self.shm_round = -1  # the round whose vector is in shm_params
        self.max_floats = max_floats
        self.log = log
        self.ctx = zmq.Context(io_threads=IO_THREADS)
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.router_mandatory = True  # a send to a gone worker raises instead of vanishing
        self.sock.router_handover = True  # a retried task takes its worker's identity over
        self.chunk, max_frame = frame_sizes(kind, max_floats, n_classes)
        self.sock.maxmsgsize = max_frame  # a larger frame ends its connection before it is buffered
        self.sock.rcvhwm = RCVHWM
        self.sock.handshake_ivl = 1000 * HANDSHAKE_SECONDS
        try:
            self.endpoint = self._bind(kind, host, bind_host or host, port, workers, max_frame, log)
            if kind == "ipc" and shared_memory:
                self.shm = channel_shm.make_dir(workers, max_floats)
                self.endpoint = replace(self.endpoint, shm=self.shm or "")
        except BaseException:
            self.shutdown()
            raise

    def _bind(
        self, kind: str, host: str, bind_host: str, port: int, workers: int, max_frame: int, log: Log
    ) -> Endpoint:
        """Listen (tcp: on bind_host, told to the workers as host; ipc: in a private directory)."""
        keys: tuple[WorkerKeys, ...] = ()
        if kind == "tcp":
            raise_open_files_limit()
            server_public, server_secret = zmq.curve_keypair()
            keys = tuple(WorkerKeys(server_public, *zmq.curve_keypair(), *zmq.curve_keypair()) for _ in range(workers))
            self.sock.curve_server = True
            self.sock.curve_secretkey = server_secret
            self.sock.zap_domain = b"dist-mnist"
            # the ZAP handler is bound before the socket: no connection is ever admitted without it
            self.guard = ChannelGuard(
                self.ctx,
                self.sock,
                {z85.decode(k.public): str(w) for w, k in enumerate(keys)},
                max_pending=32 + 2 * workers,
                log=log,
            )
            self.port = port
            if port:
                try:
                    self.sock.bind(f"tcp://{bind_host}:{port}")
                except zmq.ZMQError as e:
                    if e.errno != errno.EADDRINUSE:
                        raise
                    raise ValueError(
                        f"channel_port {port}: {bind_host}:{port} is in use; "
                        f"choose another channel_port (0: any free port)"
                    ) from None
            else:
                self.port = self.sock.bind_to_random_port(f"tcp://{bind_host}")
            self.guard.start(self.port)
            address = f"tcp://{host}:{self.port}"
        else:
            # 0700: this user only; in /tmp where $TMPDIR is too long for a socket's path (107 bytes)
            self.dir = tempfile.mkdtemp(prefix="dist-mnist-", dir=None if len(tempfile.gettempdir()) < 80 else "/tmp")
            address, self.port = f"ipc://{self.dir}/rounds", 0
            self.sock.bind(address)
        return Endpoint(address, self.run, self.chunk, max_frame, keys)

    def start_generation(self, generation: int) -> None:
        """Answer only workers of this generation from now on; older ones are told to stop."""
        self.generation = generation
        self.shm_params, self.shm_sums, self.shm_round = None, [], -1
        if self.shm and generation > 0:  # fresh files: a late task of an earlier generation writes elsewhere
            try:
                channel_shm.create_generation(self.shm, generation, self.workers, self.max_floats)
                self.shm_params = channel_shm.view(self.shm, generation, channel_shm.params_name(), writable=True)
                self.shm_sums = [
                    channel_shm.view(self.shm, generation, channel_shm.sums_name(w), writable=False)
                    for w in range(self.workers)
                ]
            except OSError as e:  # no room left to reserve, or the directory is gone: the frames, same bits
                self.shm_params, self.shm_sums = None, []
                self.log(f"channel: the vectors travel in the socket's frames from now on ({self.shm}: {e.strerror})")
                channel_shm.remove_dir(self.shm)
                self.shm, self.endpoint = None, replace(self.endpoint, shm="")

    def begin_round(self) -> None:
        """A new round in flight: answers to any earlier one are dropped from now on."""
        self.round += 1
        self.answered = set()

    def send(self, w: int, flat: np.ndarray, spec: RoundSpec) -> None:
        """The round in flight to worker w of the current generation (`flat` must not change until it answers)."""
        self.sent_floats = len(flat)
        shared = self.shm_params is not None and len(flat) <= len(self.shm_params)
        meta = {**self._binding(self.generation, w), "round": self.round, "floats": len(flat), "spec": asdict(spec)}
        if shared and self.shm_params is not None:
            if self.shm_round != self.round:  # once a round, for every worker
                self.shm_params[: len(flat)] = flat
                self.shm_round = self.round
            meta["shm"] = True
        vector = [] if shared else frames_of(self.chunk, np.ascontiguousarray(flat, np.float32))
        self.sock.send_multipart(
            [self._identity(self.generation, w), b"round", json.dumps(meta).encode(), *vector], copy=False
        )

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
            frames = self.sock.recv_multipart(copy=False)
            self.received_bytes += sum(len(f.buffer) for f in frames[1:])  # frames[0]: ROUTER's identity
            event = self._event(frames)
            if event is not None:
                return event

    def _event(self, frames: list[zmq.Frame]):
        """What a message means, or None when it is dropped (and counted)."""
        try:
            generation, w = (int(x) for x in frames[0].bytes.split(b":"))
            kind, meta = frames[1].bytes, json.loads(frames[2].bytes)
            claimed = (meta["generation"], meta["worker"])
        except (IndexError, ValueError, KeyError, TypeError):
            return self._drop("malformed")
        if not 0 <= w < self.workers:
            return self._drop("malformed")
        if meta.get("run") != self.run:
            return self._drop("another run")
        # on tcp, the ZAP handler named the connection by its key's worker
        if claimed != (generation, w) or (self.kind == "tcp" and frames[1].get("User-Id") != str(w)):
            return self._drop("a worker speaking for another")
        if generation != self.generation:
            if kind == b"hello":
                self._stop(generation, w)  # a late task of an earlier generation
            return self._drop("an earlier generation")
        if kind == b"hello":
            return "hello", generation, w, meta
        if kind not in (b"result", b"error"):
            return self._drop("malformed")
        if meta.get("round") != self.round:
            return self._drop("not the round in flight")
        if w in self.answered:
            return self._drop("a second answer")
        if kind == b"error":
            self.answered.add(w)
            return "error", generation, w, {"error": str(meta.get("error")), "type": str(meta.get("type"))}
        shared = self.shm_sums[w] if meta.get("shm") and self.shm_sums else None
        result = decode_result(meta, frames[3:], shared)
        if result is None or len(result.sums) not in (0, self.sent_floats):
            return self._drop("malformed")
        if shared is not None:
            self.received_bytes += 4 * len(result.sums)  # inbound all the same, through the shared file
        self.answered.add(w)
        return "result", generation, w, result

    def _drop(self, reason: str) -> None:
        self.dropped[reason] += 1

    def _binding(self, generation: int, w: int) -> dict:
        return {"run": self.run, "generation": generation, "worker": w}

    @staticmethod
    def _identity(generation: int, w: int) -> bytes:
        return f"{generation}:{w}".encode()

    def release(self, generation: int, w: int) -> None:
        """Tell worker w of `generation` to finish (a reachability probe is worker 0 of generation 0)."""
        self._stop(generation, w)

    def _stop(self, generation: int, w: int) -> None:
        with contextlib.suppress(zmq.ZMQError):  # that worker is not connected (any more)
            self.sock.send_multipart(
                [self._identity(generation, w), b"stop", json.dumps(self._binding(generation, w)).encode()]
            )

    def refused(self) -> dict[str, int]:
        """Connection attempts refused before authentication, by reason (tcp only)."""
        return self.guard.counts() if self.guard else {}

    def shutdown(self) -> None:
        if self.sock.closed:
            return
        endpoint = self.sock.last_endpoint  # bytes; pyzmq types every option as str | bytes | int
        if isinstance(endpoint, bytes) and endpoint:
            self.sock.unbind(endpoint)  # no new connection while the guard stops
        if self.guard is not None:
            self.guard.stop()
        self.sock.close(linger=0)
        self.ctx.term()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.shm_params, self.shm_sums = None, []
        channel_shm.remove_dir(self.shm)
