"""The round channel: a round trip over Arrow Flight, and calls without the run's secret refused."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pyarrow.flight as flight
import pytest

from dist_mnist.channel import RoundServer, decode_result, serve_rounds
from dist_mnist.rounds import RoundResult, RoundSpec

SECRET = "s3cret-of-this-run"


@pytest.fixture
def server():
    srv = RoundServer("127.0.0.1", 0, SECRET, workers=1)
    srv.start_generation(1)
    yield srv
    srv.shutdown()


def _worker(server, secret, errors):
    def compute(flat, spec):
        assert not flat.flags.writeable  # a view of the received buffer
        confusion = np.eye(10, dtype=np.int64) * spec.round_in_epoch if spec.evaluate else None
        return RoundResult(flat * 2, float(flat.sum()), 3, {0: 0.5}, 7, confusion)

    def run():
        try:
            serve_rounds(f"grpc+tcp://127.0.0.1:{server.port}", secret, {"generation": 1, "worker": 0}, compute)
        except Exception as e:  # noqa: BLE001 - handed to the test
            errors.put(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_rounds_travel_both_ways_until_stop(server):
    errors: queue.Queue = queue.Queue()
    thread = _worker(server, SECRET, errors)
    assert server.events.get(timeout=30)[:3] == ("hello", 1, 0)
    for r in range(3):
        flat = np.arange(1000, dtype=np.float32) + r
        server.send(0, flat, RoundSpec(0, r, evaluate=r == 2))
        kind, generation, w, (sums, meta) = server.events.get(timeout=30)
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
def test_a_call_without_the_run_secret_is_refused(server, secret):
    errors: queue.Queue = queue.Queue()
    _worker(server, secret, errors).join(timeout=30)
    error = errors.get(timeout=1)
    assert isinstance(error, flight.FlightUnauthenticatedError), repr(error)
    assert server.events.empty()  # the handler never ran: no hello, no stream
    client = flight.FlightClient(f"grpc+tcp://127.0.0.1:{server.port}")
    with pytest.raises(flight.FlightUnauthenticatedError):
        list(client.list_flights())  # every call, not only the exchange


def test_a_stale_generation_is_refused(server):
    server.start_generation(2)
    errors: queue.Queue = queue.Queue()
    _worker(server, SECRET, errors).join(timeout=30)
    assert "generation 1" in str(errors.get(timeout=1))
