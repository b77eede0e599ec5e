"""The round channel against a hostile peer on the network (issue 18): one that never knew the
keys must not hurt a run, one that watches the traffic must not read the keys or change the model.

The driver runs in a process of its own (tests/support/channel_driver.py) where its memory and
descriptors are measured; the peers are plain sockets of this process.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq
from zmq.utils import z85

from dist_mnist.channel.server import RoundServer
from dist_mnist.channel.worker import serve_rounds
from dist_mnist.rounds import RoundResult, RoundSpec

from ..support import REPO

DRIVER = REPO / "tests" / "support" / "channel_driver.py"
MECHANISM = b"CURVE"  # the mechanism the driver's greeting expects


def zmtp_greeting(mechanism: bytes = MECHANISM) -> bytes:
    """A ZMTP 3.0 client greeting (RFC 23): signature, version 3.0, mechanism, as-server 0, filler."""
    return b"\xff" + bytes(8) + b"\x7f" + b"\x03\x00" + mechanism.ljust(20, b"\0") + b"\x00" + bytes(31)


class Driver:
    """channel_driver.py in a subprocess, commanded line by line."""

    def __init__(self, tmp_path: Path, nofile: tuple[int, int] | None = None):
        args = [sys.executable, str(DRIVER), str(tmp_path)] + ([str(n) for n in nofile] if nofile else [])
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.logs: list[str] = []
        start = json.loads(self._line())
        self.port, self.nofile = start["port"], start["nofile"]

    def _line(self) -> str:
        while True:
            line = self.proc.stdout.readline()
            assert line, f"the driver exited ({self.proc.wait()})"
            if not line.startswith("LOG "):
                return line.strip()
            self.logs.append(line[4:].strip())

    def ask(self, command: str) -> str:
        self.proc.stdin.write(command + "\n")
        return self._line()

    def stats(self) -> dict:
        return json.loads(self.ask("stats"))

    def quit(self) -> None:
        assert self.ask("quit") == "bye"
        assert self.proc.wait(timeout=30) == 0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def driver(tmp_path):
    d = Driver(tmp_path)
    yield d
    d.kill()


def test_a_frame_declaring_4_gib_before_the_handshake_is_refused_at_once(driver):
    before = driver.stats()["rss_kb"]
    peer = socket.create_connection(("127.0.0.1", driver.port))
    sent, chunk = 0, bytes(1 << 20)
    try:
        peer.sendall(zmtp_greeting() + b"\x06" + struct.pack(">Q", 4 << 30))  # a command frame of 4 GiB
        while sent < 256 << 20:  # then stream
            peer.sendall(chunk)
            sent += len(chunk)
    except OSError:  # the driver closed the connection
        pass
    finally:
        peer.close()
    assert sent < 64 << 20, f"the driver took {sent >> 20} MB of a frame it cannot accept"  # kernel buffers only
    assert driver.stats()["rss_kb"] - before < 8 << 10, "the driver's memory grew by more than 8 MB"
    assert driver.ask("round") == "ok"
    driver.quit()


def test_a_flood_of_unauthenticated_connections_neither_exhausts_descriptors_nor_stops_rounds(tmp_path):
    # the classic Linux limits (soft 1024, hard 4096): today's channel died of "Too many open files"
    driver = Driver(tmp_path, nofile=(1024, 4096))
    flood: list[socket.socket] = []
    try:
        assert driver.nofile[0] == 4096  # raised to the hard limit
        base = driver.stats()["fds"]
        for i in range(1150):  # 1,100 idle half-open connections and 50 that send garbage
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", driver.port))
            flood.append(s)
            if i % 100 == 0:
                assert driver.ask("round") == "ok"  # rounds keep completing meanwhile
        time.sleep(0.5)
        for s in flood[-50:]:
            with contextlib.suppress(OSError):  # already shut down by the driver
                s.send(os.urandom(200))
        for _ in range(20):
            assert driver.ask("round") == "ok"  # each followed by an atomic 1 MB write, like a checkpoint
            time.sleep(0.05)
        cap, deadline = 32 + 2 * 1, time.monotonic() + 4  # a busy machine may delay the guard a little
        while (held := driver.stats()["fds"] - base) > cap + 8 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert held <= cap + 8, f"the driver holds {held} more descriptors with the flood on (cap {cap})"
    finally:
        for s in flood:
            s.close()
    time.sleep(0.5)
    assert driver.ask("round") == "ok"
    stats = driver.stats()
    driver.quit()
    assert stats["refused"].get("over_cap", 0) >= 1000, stats
    told = [line for line in driver.logs if line.startswith("channel: refused")]
    assert 1 <= len(told) <= 3, driver.logs  # rate-limited: the flood lasted a few seconds
    assert "over the cap of 34 unauthenticated" in " ".join(told) and "127.0.0.1" in told[0]


class Recorder:
    """A TCP proxy between a worker and the driver that keeps every byte the worker sends, and
    can replay them to the driver on a new connection."""

    def __init__(self, target: int):
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up, self.down = bytearray(), bytearray()  # worker -> driver, driver -> worker
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                worker, _ = self.listener.accept()
            except OSError:
                return
            driver = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(worker, driver, self.up), daemon=True).start()
            threading.Thread(target=self._pump, args=(driver, worker, self.down), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, record: bytearray) -> None:
        try:
            while data := src.recv(1 << 16):
                record += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def replay(self, data: bytes) -> None:
        with socket.create_connection(("127.0.0.1", self.target)) as s:
            s.sendall(data)
            time.sleep(0.5)


def _slices(vec: np.ndarray, n: int = 200, width: int = 16) -> list[bytes]:
    raw = vec.tobytes()
    return [raw[i : i + width] for i in np.random.default_rng(0).integers(0, len(raw) - width, n)]


def test_a_watcher_sees_neither_keys_nor_vectors_and_a_replay_changes_nothing():
    server = RoundServer("tcp", "127.0.0.1", 0, 1, 100_000, 10)
    server.start_generation(1)
    proxy = Recorder(server.port)
    endpoint = server.endpoint
    via_proxy = type(endpoint)(
        f"tcp://127.0.0.1:{proxy.port}", endpoint.run, endpoint.chunk, endpoint.max_frame, endpoint.keys
    )
    compute = lambda flat, spec: RoundResult(flat * 3, 1.0, 1, {0: 0.0})  # noqa: E731
    worker = threading.Thread(
        target=serve_rounds, args=(via_proxy, {"generation": 1, "worker": 0}, compute), daemon=True
    )
    worker.start()
    try:
        assert server.poll(30)[0] == "hello"
        flat = np.random.default_rng(1).normal(size=100_000).astype(np.float32)
        server.begin_round()
        server.send(0, flat, RoundSpec(0, 0))
        event = server.poll(30)
        np.testing.assert_array_equal(event[3].sums, flat * 3)
        wire = bytes(proxy.up + proxy.down)
        keys = endpoint.keys[0]
        for key in (keys.server_public, keys.public, keys.secret):
            assert key not in wire and z85.decode(key) not in wire
        for piece in _slices(flat) + _slices(flat * 3):
            assert piece not in wire, "a slice of a vector crossed the network in clear"

        # the worker's recorded bytes, sent again on a new connection, verbatim and with one byte flipped
        refused = sum(server.refused().values())
        captured = bytes(proxy.up)
        flipped = bytearray(captured)
        flipped[-100] ^= 0x01
        for data in (captured, bytes(flipped)):
            proxy.replay(data)
        deadline = time.monotonic() + 10
        while sum(server.refused().values()) < refused + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sum(server.refused().values()) >= refused + 2, server.refused()  # both counted as refused
        assert server.poll(0.5) is None  # neither reached the driver as a message
        server.begin_round()
        server.send(0, flat + 1, RoundSpec(0, 1))
        np.testing.assert_array_equal(server.poll(30)[3].sums, (flat + 1) * 3)  # the worker is unharmed
    finally:
        server.stop_workers()
        worker.join(timeout=10)
        proxy.listener.close()
        server.shutdown()


class Peer:
    """An authenticated DEALER that speaks the protocol by hand, with the keys of worker `key_of`."""

    def __init__(self, ctx: zmq.Context, server: RoundServer, identity: bytes, key_of: int):
        keys = server.endpoint.keys[key_of]
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.identity, self.sock.linger = identity, 0
        self.sock.curve_serverkey, self.sock.curve_publickey, self.sock.curve_secretkey = (
            keys.server_public,
            keys.public,
            keys.secret,
        )
        self.sock.connect(server.endpoint.address)

    def say(self, kind: bytes, meta: dict, sums: np.ndarray | None = None) -> None:
        payload = [] if sums is None else [sums.tobytes()]
        self.sock.send_multipart([kind, json.dumps(meta).encode(), *payload])

    def round(self) -> dict:
        assert self.sock.poll(10_000)
        return json.loads(self.sock.recv_multipart()[1])


def _answer(meta: dict, sums: np.ndarray, **changes) -> dict:
    bound = {k: meta[k] for k in ("run", "generation", "round", "worker")}
    return {
        **bound,
        "loss": 1.0,
        "n": 1,
        "seconds": {},
        "shard_bytes": 0,
        "floats": len(sums),
        "classes": None,
        **changes,
    }


def test_only_the_answer_to_the_round_in_flight_counts():
    server = RoundServer("tcp", "127.0.0.1", 0, 2, 1000, 10)
    server.start_generation(2)
    ctx = zmq.Context()
    try:
        # worker 1's key claiming to be worker 0, before worker 0 connects
        impostor = Peer(ctx, server, b"2:0", key_of=1)
        impostor.say(b"hello", {"run": server.run, "generation": 2, "worker": 0})
        assert server.poll(2) is None
        impostor.sock.close()
        peers = [Peer(ctx, server, f"2:{w}".encode(), key_of=w) for w in range(2)]
        for w, p in enumerate(peers):
            p.say(b"hello", {"run": server.run, "generation": 2, "worker": w})
        assert sorted(server.poll(10)[2] for _ in range(2)) == [0, 1]
        flat = np.arange(1000, dtype=np.float32)
        server.begin_round()
        server.begin_round()  # round 2 is in flight
        for w in range(2):
            server.send(w, flat, RoundSpec(0, 0))
        metas = [p.round() for p in peers]
        zeros, good = np.zeros(1000, np.float32), flat * 2
        peers[0].say(b"result", _answer(metas[0], zeros, run="0123456789abcdef"))  # another run
        peers[0].say(b"result", _answer(metas[0], zeros, round=1))  # an earlier round
        peers[1].say(b"result", _answer(metas[1], zeros, worker=0))  # worker 1 answering for worker 0
        stale = Peer(ctx, server, b"1:0", key_of=0)  # a task of generation 1
        stale.say(b"result", _answer(metas[0], zeros, generation=1))
        peers[0].say(b"result", _answer(metas[0], zeros, floats=999), zeros[:999])  # the wrong size
        peers[0].say(b"result", _answer(metas[0], good), good)
        peers[0].say(b"result", _answer(metas[0], zeros), zeros)  # a second answer: a replay
        peers[1].say(b"result", _answer(metas[1], good), good)
        got = {}
        for _ in range(2):
            _, _, w, result = server.poll(10)
            got[w] = result
        assert server.poll(1) is None
        for w in range(2):
            np.testing.assert_array_equal(got[w].sums, good)
        assert server.dropped == {
            "a worker speaking for another": 2,
            "another run": 1,
            "not the round in flight": 1,
            "an earlier generation": 1,
            "malformed": 1,
            "a second answer": 1,
        }
    finally:
        ctx.destroy(linger=0)
        server.shutdown()
