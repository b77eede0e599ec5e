"""The round channel: ZeroMQ between the driver and its workers. No Spark here.

The driver binds one ROUTER socket; each worker connects one DEALER socket for the whole run
and says hello. A round is one multipart message each way: [kind, JSON metadata, the vector
in frames of at most CHUNK_BYTES]. Two kinds of address:

- "tcp" (a cluster): every connection is encrypted and authenticated with ZeroMQ's CURVE.
  For each run the driver makes a server key pair and one client key pair per worker; the
  workers get theirs inside the Spark task (never on a command line, in a log or in a file),
  and a ZAP handler admits only those keys, each as its own worker
  (dist_mnist.channel_guard, which also bounds connections that have not authenticated).
  There is no clear-text fallback: without CURVE in libzmq, the TCP channel refuses to start.
- "ipc" (a local master): a Unix socket in a fresh 0700 directory, removed at shutdown. Only
  this user's processes on this host can connect and nothing crosses a network, so rounds
  are not encrypted there (CURVE costs milliseconds a round: benchmarks/channels.py). The
  vectors themselves go through files in a private directory on /dev/shm (channel_shm): the
  driver writes a round's vector once and every worker reads it in place, each worker writes
  its sums where the driver reads them; the socket carries only the messages.

Every message is bound to the round it belongs to: the driver's carry (run, generation,
round, worker), and a worker's answer echoes them. The driver drops, and counts, anything
that does not answer the round in flight: another run, an earlier generation or round, a
second answer, a worker speaking for another than its key's, a malformed message. Before a
peer has authenticated, the driver holds at most one frame of it (channel_messages.frame_sizes:
sized from the plan, and over TCP never above CHUNK_BYTES).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import zmq
from zmq.utils import z85

from dist_mnist import channel_shm
from dist_mnist.channel_guard import HANDSHAKE_SECONDS, ChannelGuard, raise_open_files_limit
from dist_mnist.channel_messages import decode_result, encode_result, frame_sizes, frames_of, joined
from dist_mnist.rounds import RoundSpec
from dist_mnist.worker_errors import USER_ERROR_TYPES, WorkerError

IO_THREADS = 2  # ZeroMQ's I/O threads: sends to several workers at once (benchmarks/channels.py times rounds with it)
RCVHWM = 4  # messages queued per worker connection; a worker sends one a round
NO_CURVE = "this libzmq has no CURVE encryption (zmq.has('curve') is False), and rounds never travel in clear over TCP"


@dataclass(frozen=True)
class WorkerKeys:
    """One worker's CURVE keys (Z85 text): the driver's public key and the worker's pair."""

    server_public: bytes
    public: bytes
    secret: bytes = field(repr=False)
    peer_public: bytes = b""  # the server key of this worker's chain listener (reduce = "chain"; channel_chain)
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
        log=print,
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
        self.shm: str | None = None  # ipc: the vectors' directory on /dev/shm (channel_shm)
        self.shm_params: np.ndarray | None = None  # this generation's round vector, mapped writable
        self.shm_sums: list[np.ndarray] = []  # this generation's sums files, mapped read-only
        self.shm_round = -1  # the round whose vector is in shm_params
        self.max_floats = max_floats
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

    def _bind(self, kind: str, host: str, bind_host: str, port: int, workers: int, max_frame: int, log) -> Endpoint:
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
                self.sock.bind(f"tcp://{bind_host}:{port}")
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
            channel_shm.create_generation(self.shm, generation, self.workers, self.max_floats)
            self.shm_params = channel_shm.view(self.shm, generation, channel_shm.params_name(), writable=True)
            self.shm_sums = [
                channel_shm.view(self.shm, generation, channel_shm.sums_name(w), writable=False)
                for w in range(self.workers)
            ]

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


def serve_rounds(endpoint: Endpoint, hello: dict, compute, deliver=None) -> None:
    """The worker's end: connect, say hello, then answer rounds with compute(flat, spec) ->
    RoundResult until the driver says stop. An exception in compute is sent back, then raised,
    unless it is a user error (bad data), which fails the round, not the task.
    deliver(sock, result, answer) -> bool, if given, sends the result instead (the chain reduce,
    channel_chain.PeerLinks.deliver; False: the driver said stop meanwhile)."""
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
                if isinstance(e, USER_ERROR_TYPES):
                    continue  # bad data: the driver raises it and says stop; the task ends cleanly, unretried
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
    """A worker's maps of its generation's shared files (channel_shm), opened on first use."""

    def __init__(self, directory: str, generation: int, w: int):
        self.directory, self.generation, self.w = directory, generation, w
        self._params: np.ndarray | None = None
        self._sums: np.ndarray | None = None

    def params(self, floats: int) -> np.ndarray:
        """The round's vector, read in place (read-only)."""
        if not self.directory:
            raise RuntimeError(f"worker {self.w}: a round in shared memory, but this channel has none")
        if self._params is None:
            self._params = channel_shm.view(self.directory, self.generation, channel_shm.params_name(), False)
        if floats > len(self._params):
            raise RuntimeError(f"worker {self.w}: a round of {floats} floats, but its shared file holds fewer")
        return self._params[:floats]

    def sums(self) -> np.ndarray | None:
        """Where this worker's sums go (None: in the result's frames)."""
        if self.directory and self._sums is None:
            self._sums = channel_shm.view(self.directory, self.generation, channel_shm.sums_name(self.w), True)
        return self._sums


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
