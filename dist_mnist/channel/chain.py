"""The chain reduce (`reduce = "chain"`): the workers add their sums along a chain, so the driver
receives one combined vector a round whatever W. No Spark here.

Worker 0 sends its result to worker 1, which adds its own and passes the sum on, ..., and
worker W-1 sends the combined result to the driver. Each worker adds np.add(received, own) in
float32, the Combiner's operation in the Combiner's order (((s0 + s1) + s2) + ...), so the
driver gets the bits a flat combine gives. The vector travels in parts of at most CHUNK_BYTES,
each part passed on as soon as it is added: the chain costs about one vector's transfer plus
W parts' latency, not W vectors.

A peer link is as guarded as the driver's: over TCP, worker w listens with its own per-run
CURVE server key and a ZAP handler (guard.py) admits only worker w-1's key, with the same
handshake timeout and cap on unauthenticated connections; frames are bounded by MAXMSGSIZE;
where the driver's channel is a Unix socket, so are the links (in a private 0700 directory).
Every message carries (run, generation, round, worker); anything not from the predecessor
for the round in flight is dropped and counted. A broken chain leaves the driver without its
round's result: it times the round out as a lost worker, and relaunches or falls back as ever.
"""

from __future__ import annotations

import json
import shutil
import socket
import sys
import tempfile
from collections import Counter

import numpy as np
import zmq
from zmq.utils import z85

from dist_mnist.channel.guard import HANDSHAKE_SECONDS, ChannelGuard
from dist_mnist.channel.messages import CHUNK_BYTES, encode_result, frames_of, joined
from dist_mnist.hints import Log
from dist_mnist.rounds import RoundResult

PEER_HWM = 64  # parts queued on a link
SEND_SECONDS = 120.0  # a part waits at most this long for the successor, then the task fails
MAX_PENDING = 8  # unauthenticated connections a link's listener holds at once


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class PeerLinks:
    """Worker w's links: a listener for w-1 (w > 0) and a socket to w+1 (w < W-1).

    exchange(address) -> every worker's listener address, in worker order (in Spark,
    BarrierTaskContext.allGather; all W workers call it once). host: where to listen (tcp).
    """

    def __init__(self, endpoint, w: int, workers: int, host: str, exchange, log: Log = _stderr):
        self.endpoint, self.w, self.workers = endpoint, w, workers
        self.tcp = endpoint.address.startswith("tcp://")
        self.chunk = min(CHUNK_BYTES, endpoint.chunk)  # parts fit the frame bound on tcp and ipc alike
        self.dropped: Counter[str] = Counter()
        self.ctx = zmq.Context()
        self.up: zmq.Socket | None = None
        self.down: zmq.Socket | None = None
        self.guard: ChannelGuard | None = None
        self.dir: str | None = None
        try:
            addresses = exchange(self._listen(host, log) if w > 0 else "")
            if w < workers - 1:
                self._connect(addresses[w + 1])
        except BaseException:
            self.close()
            raise

    def _listen(self, host: str, log: Log) -> str:
        sock = self.up = self.ctx.socket(zmq.PULL)
        sock.linger = 0
        sock.maxmsgsize = self.endpoint.max_frame
        sock.rcvhwm = PEER_HWM
        sock.handshake_ivl = 1000 * HANDSHAKE_SECONDS
        if not self.tcp:
            self.dir = tempfile.mkdtemp(prefix="dist-mnist-chain-", dir="/tmp")  # 0700: this user only
            address = f"ipc://{self.dir}/w{self.w}"
            sock.bind(address)
            return address
        keys = self.endpoint.keys
        sock.curve_server = True
        sock.curve_secretkey = keys[self.w].peer_secret
        sock.zap_domain = b"dist-mnist-chain"
        # bound before the socket binds: only the predecessor's key is ever admitted, named as it
        self.guard = ChannelGuard(
            self.ctx, sock, {z85.decode(keys[self.w - 1].public): str(self.w - 1)}, MAX_PENDING, log
        )
        host = socket.gethostbyname(host)  # libzmq binds an address, not a name
        port = sock.bind_to_random_port(f"tcp://{host}")
        self.guard.start(port)
        return f"tcp://{host}:{port}"

    def _connect(self, address: str) -> None:
        sock = self.down = self.ctx.socket(zmq.PUSH)
        sock.linger = 1000
        sock.sndhwm = PEER_HWM
        sock.sndtimeo = int(1000 * SEND_SECONDS)
        if self.tcp:
            if not address.startswith("tcp://") or not self.endpoint.keys:
                raise RuntimeError(f"worker {self.w}: refusing a chain link in clear to {address!r}")
            keys = self.endpoint.keys
            sock.curve_serverkey = keys[self.w + 1].peer_public
            sock.curve_publickey, sock.curve_secretkey = keys[self.w].public, keys[self.w].secret
        sock.connect(address)

    def deliver(self, driver: zmq.Socket, own: RoundResult, answer: dict) -> bool:
        """Pass this worker's result down the chain (the last worker: the sum to the driver).
        False when the driver said stop while this worker waited for its predecessor."""
        if self.up is None:
            return self._pass_on(driver, own, answer, own_meta(own), iter(()), 0)
        head = self._receive(driver, answer, "head")
        if head is None:
            return False
        meta, frames = head
        got = int(meta["floats"])
        try:
            received = received_result(meta, frames)
        except (KeyError, TypeError, ValueError) as e:
            raise RuntimeError(f"worker {self.w}: a malformed head from worker {self.w - 1} ({e})") from None
        if got and len(own.sums) and got != len(own.sums):
            raise RuntimeError(f"worker {self.w}: {got} floats from worker {self.w - 1}, {len(own.sums)} of its own")
        total = combined_meta(received, own)
        return self._pass_on(driver, own, answer, total, self._parts(driver, answer, got), got)

    def _pass_on(self, driver, own: RoundResult, answer: dict, total: RoundResult, parts, got: int) -> bool:
        """Add the predecessor's parts (`got` floats) to this worker's sums, part by part, and send on."""
        step = self.chunk // 4
        n = got or len(own.sums)
        sums = np.empty(n, np.float32) if self.down is None else None
        if self.down is not None:
            self._send(b"head", {**answer, **head_meta(total, n)}, total.confusion)
        for i, lo in enumerate(range(0, n, step)):
            mine = own.sums[lo : lo + step]
            if got:
                part = next(parts, None)
                if part is None:
                    return False  # the driver said stop
                if len(part) != len(mine) and len(own.sums):
                    raise RuntimeError(f"worker {self.w}: part {i} of worker {self.w - 1} has {len(part)} floats")
                mine = np.add(part, mine) if len(own.sums) else part  # the Combiner's op and order
            if sums is None:
                self._send(b"part", {**answer, "index": i}, mine)
            else:
                sums[lo : lo + len(mine)] = mine
        if sums is not None:
            r = total
            result = RoundResult(sums, r.loss, r.n, r.seconds, r.shard_bytes, r.confusion)
            driver.send_multipart([b"result", *encode_result(result, answer, self.endpoint.chunk)], copy=False)
        return True

    def _parts(self, driver, answer: dict, floats: int):
        """The predecessor's parts as float32 arrays, in order (stops early if the driver says stop)."""
        step = self.chunk // 4
        for i, lo in enumerate(range(0, floats, step)):
            got = self._receive(driver, answer, "part", i)
            if got is None:
                return
            frames = got[1]
            want = 4 * min(step, floats - lo)
            if len(frames) != 1 or len(frames[0].buffer) != want:
                raise RuntimeError(f"worker {self.w}: part {i} of worker {self.w - 1} is not {want} bytes")
            yield np.frombuffer(frames[0].buffer, np.float32)

    def _send(self, kind: bytes, meta: dict, array: np.ndarray | None) -> None:
        frames: list[bytes | memoryview] = [kind, json.dumps({**meta, "worker": self.w}).encode()]
        if array is not None:  # a part is one frame; the confusion counts may take several
            frames += frames_of(self.chunk, array) if array.size else [b""]
        try:
            assert self.down is not None
            self.down.send_multipart(frames, copy=False)
        except zmq.Again:
            raise RuntimeError(f"worker {self.w}: worker {self.w + 1} took no part for {SEND_SECONDS:g} s") from None

    def _receive(self, driver, answer: dict, kind: str, index: int | None = None):
        """The predecessor's next message of `kind` for the round in flight as (meta, frames), or
        None if the driver says stop first. Anything else is dropped and counted."""
        assert self.up is not None
        poller = zmq.Poller()
        poller.register(self.up, zmq.POLLIN)
        poller.register(driver, zmq.POLLIN)
        while True:
            ready = dict(poller.poll())
            if driver in ready and _is_stop(driver.recv_multipart(copy=False), answer):
                return None
            if self.up not in ready:
                continue
            frames = self.up.recv_multipart(copy=False)
            why = self._check(frames, answer, kind, index)
            if why is None:
                return json.loads(frames[1].bytes), frames[2:]
            self.dropped[why] += 1

    def _check(self, frames, answer: dict, kind: str, index: int | None) -> str | None:
        """Why a message on the link is not the one awaited, or None if it is."""
        try:
            meta = json.loads(frames[1].bytes)
            if self.tcp and frames[0].get("User-Id") != str(self.w - 1):
                return "a worker speaking for another"
            if meta.get("worker") != self.w - 1 or any(meta.get(k) != answer[k] for k in ("run", "generation")):
                return "another run, generation or worker"
            if meta.get("round") != answer["round"]:
                return "not the round in flight"
            if frames[0].bytes != kind.encode() or meta.get("index") != index:
                return "out of order"
        except (IndexError, ValueError, TypeError, AttributeError):
            return "malformed"
        return None

    def close(self) -> None:
        if self.guard is not None:
            self.guard.stop()
        for sock in (self.up, self.down):
            if sock is not None:
                sock.close()
        self.ctx.term()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)


def _is_stop(frames, answer: dict) -> bool:
    try:
        meta = json.loads(frames[1].bytes)
        return frames[0].bytes == b"stop" and all(meta.get(k) == answer[k] for k in ("run", "generation", "worker"))
    except (IndexError, ValueError):
        return False


def own_meta(r: RoundResult) -> RoundResult:
    """Worker 0's result as the chain's running total (its sums travel in parts)."""
    return RoundResult(np.zeros(0, np.float32), 0.0 + r.loss, r.n, dict(r.seconds), r.shard_bytes, r.confusion)


def head_meta(total: RoundResult, floats: int) -> dict:
    """A head's fields: the running total's small fields and the floats its parts hold."""
    classes = None if total.confusion is None else len(total.confusion)
    seconds = {str(k): v for k, v in total.seconds.items()}
    return {"loss": total.loss, "n": total.n, "seconds": seconds, "shard_bytes": total.shard_bytes,
            "floats": floats, "classes": classes}  # fmt: skip


def received_result(meta: dict, frames) -> RoundResult:
    """The small fields of a predecessor's head (its sums come in parts)."""
    c = meta["classes"]
    confusion = None
    if c is not None:
        c = int(c)
        data = joined(frames, 8 * c * c) if c > 0 else np.zeros(0, np.uint8)
        if data is None or c < 0:
            raise ValueError("its confusion counts are not the size it says")
        confusion = data.view(np.int64).reshape(c, c)
    seconds = {int(k): float(v) for k, v in meta["seconds"].items()}
    return RoundResult(np.zeros(0, np.float32), float(meta["loss"]), int(meta["n"]), seconds,
                       int(meta["shard_bytes"]), confusion)  # fmt: skip


def combined_meta(received: RoundResult, own: RoundResult) -> RoundResult:
    """The running total's small fields after this worker's, added as the Combiner adds them."""
    if own.confusion is None:
        confusion = received.confusion
    else:
        confusion = own.confusion.copy() if received.confusion is None else received.confusion + own.confusion
    seconds = {**received.seconds, **own.seconds}
    return RoundResult(np.zeros(0, np.float32), received.loss + own.loss, received.n + own.n, seconds,
                       received.shard_bytes + own.shard_bytes, confusion)  # fmt: skip
