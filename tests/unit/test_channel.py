"""The round channel: a round trip over ZeroMQ, and connections without the run's secret refused."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from dist_mnist.channel import RoundServer, decode_result, serve_rounds
from dist_mnist.rounds import RoundResult, RoundSpec

SECRET = "s3cret-of-this-run"


@pytest.fixture
def server():
    srv = RoundServer("127.0.0.1", 0, SECRET, workers=1)
    srv.start_generation(1)
    yield srv
    srv.shutdown()


def _doubling(flat, spec):
    assert not flat.flags.writeable  # a view of the received frame
    confusion = np.eye(10, dtype=np.int64) * spec.round_in_epoch if spec.evaluate else None
    return RoundResult(flat * 2, float(flat.sum()), 3, {0: 0.5}, 7, confusion)


def _worker(server, secret, errors, generation=1, compute=_doubling):
    def run():
        try:
            serve_rounds(f"tcp://127.0.0.1:{server.port}", secret, {"generation": generation, "worker": 0}, compute)
        except Exception as e:  # noqa: BLE001 - handed to the test
            errors.put(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_rounds_travel_both_ways_until_stop(server):
    errors: queue.Queue = queue.Queue()
    thread = _worker(server, SECRET, errors)
    assert server.poll(30)[:3] == ("hello", 1, 0)
    for r in range(3):
        flat = np.arange(1000, dtype=np.float32) + r
        server.send(0, flat, RoundSpec(0, r, evaluate=r == 2))
        kind, generation, w, (sums, meta) = server.poll(30)
        assert (kind, generation, w) == ("result", 1, 0)
        result = decode_result(sums, meta)
        np.testing.assert_array_equal(result.sums, flat * 2)
        assert (result.loss, result.n, result.seconds, result.resident_bytes) == (float(flat.sum()), 3, {0: 0.5}, 7)
        assert (result.confusion is None) == (r != 2)
    np.testing.assert_array_equal(result.confusion, np.eye(10) * 2)
    server.stop_workers()
    thread.join(timeout=30)
    assert not thread.is_alive() and errors.empty()


@pytest.mark.parametrize("secret", ["", "not-the-secret"], ids=["none", "wrong"])
def test_a_connection_without_the_run_secret_is_refused(server, secret):
    failed = {zmq.EVENT_HANDSHAKE_FAILED_AUTH, zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL, zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL}
    monitor = server.sock.get_monitor_socket()
    try:
        errors: queue.Queue = queue.Queue()
        _worker(server, secret, errors)  # it says hello, and waits for rounds that never come
        seen, deadline = [], time.monotonic() + 20
        while not failed & set(seen) and time.monotonic() < deadline:
            if monitor.poll(200):
                seen.append(recv_monitor_message(monitor)["event"])
        assert failed & set(seen), f"no failed handshake among the events {seen}"
        assert zmq.EVENT_HANDSHAKE_SUCCEEDED not in seen
        assert server.poll(1.0) is None  # nothing of that connection reached the driver
    finally:
        server.sock.disable_monitor()
        monitor.close()


def test_a_worker_of_an_earlier_generation_is_told_to_stop(server):
    server.start_generation(2)
    errors: queue.Queue = queue.Queue()
    thread = _worker(server, SECRET, errors, generation=1)
    assert server.poll(2.0) is None  # its hello is answered with stop, not reported
    thread.join(timeout=30)
    assert not thread.is_alive() and errors.empty()


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
    thread = _worker(server, SECRET, errors, compute=compute)
    assert server.poll(30)[:3] == ("hello", 1, 0)
    flat = np.ones(4, np.float32)
    server.send(0, flat, RoundSpec(0, 0))
    assert server.poll(30) == ("error", 1, 0, {"error": "part-00001.parquet: image at row 1 has 783 bytes",
                                                "type": "ValueError"})
    server.send(0, flat, RoundSpec(0, 1))  # still serving: the driver decides
    assert server.poll(30)[0] == "result"
    server.send(0, flat, RoundSpec(0, 2))
    assert server.poll(30) == ("error", 1, 0, {"error": "a bug", "type": "ZeroDivisionError"})
    thread.join(timeout=30)  # a fault ends the task, so Spark sees it fail
    assert not thread.is_alive() and isinstance(errors.get_nowait(), ZeroDivisionError)
