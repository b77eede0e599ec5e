"""The round channel: rounds both ways over TCP (CURVE) and a Unix socket, who is refused, and
what happens to errors and to workers of an earlier generation."""

from __future__ import annotations

import dataclasses
import os
import queue
import stat
import threading
import time

import numpy as np
import pytest
import zmq

from dist_mnist.channel import messages as messages
from dist_mnist.channel.messages import CHUNK_BYTES
from dist_mnist.channel.server import RoundServer
from dist_mnist.channel.worker import serve_rounds
from dist_mnist.rounds import RoundResult, RoundSpec


@pytest.fixture(params=["tcp", "ipc"])
def server(request):
    srv = RoundServer(request.param, "127.0.0.1", 0, 1, 1 << 20, 10)
    srv.start_generation(1)
    yield srv
    srv.shutdown()


@pytest.fixture
def tcp_server():
    srv = RoundServer("tcp", "127.0.0.1", 0, 1, 1000, 10)
    srv.start_generation(1)
    yield srv
    srv.shutdown()


def _doubling(flat, spec):
    assert not flat.flags.writeable  # received bytes: never written into
    confusion = np.eye(10, dtype=np.int64) * spec.round_in_epoch if spec.evaluate else None
    return RoundResult(flat * 2, float(flat.sum()), 3, {0: 0.5}, 7, confusion)


def _worker(endpoint, errors, generation=1, compute=_doubling):
    def run():
        try:
            serve_rounds(endpoint, {"generation": generation, "worker": 0}, compute)
        except Exception as e:  # noqa: BLE001 - handed to the test
            errors.put(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _round(server, flat, spec):
    server.begin_round()
    server.send(0, flat, spec)
    return server.poll(30)


def test_rounds_travel_both_ways_until_stop(server):
    errors: queue.Queue = queue.Queue()
    thread = _worker(server.endpoint, errors)
    assert server.poll(30)[:3] == ("hello", 1, 0)
    for r, n in enumerate([1000, 1000, CHUNK_BYTES // 4 * 3 + 5]):  # the last spans several frames over TCP
        flat = np.arange(n, dtype=np.float32) + r
        kind, generation, w, result = _round(server, flat, RoundSpec(0, r, evaluate=r == 2))
        assert (kind, generation, w) == ("result", 1, 0)
        np.testing.assert_array_equal(result.sums, flat * 2)
        assert (result.loss, result.n, result.seconds, result.shard_bytes) == (float(flat.sum()), 3, {0: 0.5}, 7)
        assert (result.confusion is None) == (r != 2)
    np.testing.assert_array_equal(result.confusion, np.eye(10) * 2)
    server.stop_workers()
    thread.join(timeout=30)
    assert not thread.is_alive() and errors.empty()
    assert server.dropped == {}


def test_a_unix_socket_lives_in_a_private_directory_removed_at_shutdown():
    srv = RoundServer("ipc", "127.0.0.1", 0, 1, 1000, 10)
    path = srv.endpoint.address.removeprefix("ipc://")
    directory = os.path.dirname(path)
    mode = os.stat(directory)
    assert stat.S_IMODE(mode.st_mode) == 0o700 and mode.st_uid == os.getuid() and srv.endpoint.keys == ()
    srv.shutdown()
    assert not os.path.exists(directory)


def _refused(server) -> int:
    return sum(server.refused().values())


def _wait_for_refusals(server, at_least: int, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while _refused(server) < at_least and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _refused(server) >= at_least, server.refused()


@pytest.mark.parametrize("how", ["no mechanism", "plain", "unknown key", "wrong server key"])
def test_a_connection_without_this_runs_keys_is_refused(tcp_server, how):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.identity = b"1:0"
    good = tcp_server.endpoint.keys[0]
    if how == "plain":
        sock.plain_username, sock.plain_password = b"dist-mnist", b"a sniffed secret"
    elif how == "unknown key":
        sock.curve_serverkey = good.server_public
        sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
    elif how == "wrong server key":  # the worker's own keys, towards another server's key
        sock.curve_serverkey = zmq.curve_keypair()[0]
        sock.curve_publickey, sock.curve_secretkey = good.public, good.secret
    sock.linger = 0
    try:
        sock.connect(tcp_server.endpoint.address)
        sock.send_multipart([b"hello", b'{"generation": 1, "worker": 0}'])
        _wait_for_refusals(tcp_server, 1)
        assert tcp_server.poll(0.5) is None  # nothing of that connection reached the driver
    finally:
        sock.close()
        ctx.term()


def test_keys_stay_out_of_reprs(tcp_server):
    keys = tcp_server.endpoint.keys[0]
    for text in (repr(tcp_server.endpoint), repr(keys)):
        assert keys.secret.decode() not in text
    assert "keys" not in repr(tcp_server.endpoint)


def test_without_curve_there_is_no_tcp_channel(monkeypatch):
    monkeypatch.setattr(zmq, "has", lambda capability: capability != "curve")
    with pytest.raises(RuntimeError, match=r"no CURVE encryption .* never travel in clear over TCP"):
        RoundServer("tcp", "127.0.0.1", 0, 1, 1000, 10)
    RoundServer("ipc", "127.0.0.1", 0, 1, 1000, 10).shutdown()  # a Unix socket needs none


def test_a_worker_never_connects_in_clear_over_tcp(tcp_server):
    clear = dataclasses.replace(tcp_server.endpoint, keys=())
    with pytest.raises(RuntimeError, match="no CURVE keys; refusing a clear channel"):
        serve_rounds(clear, {"generation": 1, "worker": 0}, _doubling)


def test_a_worker_of_an_earlier_generation_is_told_to_stop(server):
    server.start_generation(2)
    errors: queue.Queue = queue.Queue()
    thread = _worker(server.endpoint, errors, generation=1)
    assert server.poll(2.0) is None  # its hello is answered with stop, not reported
    thread.join(timeout=30)
    assert not thread.is_alive() and errors.empty()
    assert server.dropped == {"an earlier generation": 1}


class BadData(ValueError):
    """Stands for pyarrow's ArrowInvalid: a ValueError by another name."""


def test_a_data_error_fails_the_round_not_the_worker(server):
    def compute(flat, spec):
        if spec.round_in_epoch == 0:
            raise BadData("part-00001.parquet: image at row 1 has 783 bytes")
        if spec.round_in_epoch == 2:
            raise ZeroDivisionError("a bug")
        return _doubling(flat, spec)

    errors: queue.Queue = queue.Queue()
    thread = _worker(server.endpoint, errors, compute=compute)
    assert server.poll(30)[:3] == ("hello", 1, 0)
    flat = np.ones(4, np.float32)
    assert _round(server, flat, RoundSpec(0, 0)) == (
        "error",
        1,
        0,
        {"error": "part-00001.parquet: image at row 1 has 783 bytes", "type": "ValueError"},
    )
    assert _round(server, flat, RoundSpec(0, 1))[0] == "result"  # still serving: the driver decides
    assert _round(server, flat, RoundSpec(0, 2)) == ("error", 1, 0, {"error": "a bug", "type": "ZeroDivisionError"})
    thread.join(timeout=30)  # a fault ends the task, so Spark sees it fail
    assert not thread.is_alive() and isinstance(errors.get_nowait(), ZeroDivisionError)


def test_frames_are_bounded_by_the_plan():
    # sync tutorial: 795,010 floats -> vector frames of 256 KiB over TCP, the whole vector on ipc
    assert messages.frame_sizes("tcp", 795_010, 10) == (CHUNK_BYTES, CHUNK_BYTES + messages.FRAME_OVERHEAD)
    assert messages.frame_sizes("ipc", 795_010, 10) == (3_180_040, 3_180_040 + messages.FRAME_OVERHEAD)
    # a small network: no frame larger than the metadata allowance
    assert messages.frame_sizes("tcp", 1000, 10)[1] == messages.META_BYTES + messages.FRAME_OVERHEAD


def test_a_taken_channel_port_is_one_line_naming_the_setting():
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError) as refused:
            RoundServer("tcp", "127.0.0.1", port, 2, 100, 10)
    assert str(refused.value) == (
        f"channel_port {port}: 127.0.0.1:{port} is in use; choose another channel_port (0: any free port)"
    )
