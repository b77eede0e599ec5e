"""The chain reduce (dist_mnist.channel.chain): the driver receives one vector a round, with the
bits the driver's own worker-order combine gives; only the predecessor may speak on a link."""

from __future__ import annotations

import json

import numpy as np
import pytest
import zmq

from dist_mnist.channel.messages import CHUNK_BYTES
from dist_mnist.rounds import RoundResult, RoundSpec, combine_all

from ..support import chain_harness as harness

FLOATS = CHUNK_BYTES // 4 * 2 + 1000  # three parts over TCP: the pipeline carries partial parts too


def _sums(w: int, n: int) -> np.ndarray:
    """Values of very different magnitudes: the order of a float32 sum shows in its bits."""
    rng = np.random.default_rng(100 + w)
    return (rng.standard_normal(n) * np.float32(10.0) ** rng.integers(-4, 5, n)).astype(np.float32)


def _compute_of(n: int, empty: bool = False):
    def compute_of(w):
        sums = _sums(w, n)

        def compute(flat, spec):
            confusion = np.full((10, 10), w + spec.round_in_epoch, np.int64) if spec.evaluate else None
            out = np.zeros(0, np.float32) if empty else sums * flat[0]
            return RoundResult(out, 0.1 * (w + 1) + spec.round_in_epoch, 7 * w + 1, {w: 0.5 * w}, 3 * w, confusion)

        return compute

    return compute_of


def _expected(compute_of, workers, flat, spec):
    return combine_all([compute_of(w)(flat, spec) for w in range(workers)])


def _assert_same(a: RoundResult, b: RoundResult) -> None:
    assert a.sums.dtype == b.sums.dtype == np.float32
    assert a.sums.view(np.uint32).tobytes() == b.sums.view(np.uint32).tobytes()  # bit for bit, NaN-proof
    assert (a.loss, a.n, a.seconds, a.shard_bytes) == (b.loss, b.n, b.seconds, b.shard_bytes)
    assert (a.confusion is None) == (b.confusion is None)
    if a.confusion is not None:
        np.testing.assert_array_equal(a.confusion, b.confusion)


@pytest.mark.parametrize("kind", ["tcp", "ipc"])
@pytest.mark.parametrize("workers", range(1, 9))
def test_the_chain_gives_the_flat_combines_bits_and_the_driver_one_vector(kind, workers):
    compute_of = _compute_of(FLOATS)
    server, threads, errors = harness.start(kind, workers, FLOATS, "chain", compute_of)
    try:
        for r in range(3):
            flat = np.full(FLOATS, 1.0 + r, np.float32)
            spec = RoundSpec(0, r, evaluate=r == 1)
            before = server.received_bytes
            got = harness.one_round(server, workers, "chain", flat, spec)
            _assert_same(got, _expected(compute_of, workers, flat, spec))
            # one combined vector reached the driver, not W of them
            assert 4 * FLOATS <= server.received_bytes - before < 4 * FLOATS + 4096 + 800
        assert errors == [] and server.dropped == {}
    finally:
        harness.stop(server, threads)
    assert not any(t.is_alive() for t in threads)


def test_the_order_shows_in_the_bits_so_the_test_above_can_fail():
    parts = [RoundResult(_sums(w, FLOATS), 0.0, 1) for w in range(4)]
    assert combine_all(parts).sums.tobytes() != combine_all(parts[::-1]).sums.tobytes()


def test_an_evaluation_only_round_sends_no_sums_down_the_chain():
    compute_of = _compute_of(FLOATS, empty=True)
    server, threads, errors = harness.start("tcp", 3, FLOATS, "chain", compute_of)
    try:
        spec, flat = RoundSpec(0, 2, train=False, evaluate=True), np.ones(FLOATS, np.float32)
        got = harness.one_round(server, 3, "chain", flat, spec)
        _assert_same(got, _expected(compute_of, 3, flat, spec))
        assert len(got.sums) == 0 and errors == []
    finally:
        harness.stop(server, threads)


class Vanish(BaseException):
    """Not an Exception: serve_rounds does not report it; the worker just ends, as a killed one does."""


def test_a_broken_chain_leaves_the_driver_to_time_out_and_stop_frees_the_waiting_workers():
    def compute_of(w):
        def compute(flat, spec):
            if w == 1:
                raise Vanish  # worker 1 vanishes mid-round
            return RoundResult(flat.copy(), 0.0, 1, {w: 0.0})

        return compute

    server, threads, errors = harness.start("tcp", 3, 1000, "chain", compute_of)
    try:
        assert harness.one_round(server, 3, "chain", np.ones(1000, np.float32), RoundSpec(0, 0), timeout=2) is None
    finally:
        harness.stop(server, threads)  # worker 2, waiting for worker 1, takes the driver's stop
    assert not any(t.is_alive() for t in threads)
    assert [w for w, e in errors] == [1]


def _push(ep, keys: tuple[bytes, bytes], *messages) -> None:
    """Messages to worker 1's link, from a connection with these (public, secret) keys."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.linger = 2000  # long enough for the handshake: the messages are refused, not lost
    sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = ep.keys[1].peer_public, *keys
    sock.connect(harness.LATEST["gather"].values[1])
    for kind, meta in messages:
        sock.send_multipart([kind, json.dumps({"run": ep.run, "generation": 1, "worker": 0, **meta}).encode()])
    sock.close()
    ctx.term()


def test_a_link_admits_only_the_predecessors_key_and_drops_what_is_not_the_round_in_flight():
    compute_of = _compute_of(1000)
    server, threads, errors = harness.start("tcp", 2, 1000, "chain", compute_of)
    ep = server.endpoint
    # a forged head for the round about to start: taken, it would replace worker 0's sums
    forged = (
        b"head",
        {
            "round": 1,
            "index": None,
            "floats": 0,
            "loss": 0.0,
            "n": 0,
            "seconds": {},
            "shard_bytes": 0,
            "classes": None,
        },
    )
    try:
        _push(ep, zmq.curve_keypair(), forged)  # a stranger's key
        _push(ep, (ep.keys[1].public, ep.keys[1].secret), forged)  # worker 1's own key, not its predecessor's
        stale = (b"head", {**forged[1], "round": 0})  # the predecessor's key, an earlier round
        other = (b"head", {**forged[1], "generation": 0})  # and an earlier generation
        _push(ep, (ep.keys[0].public, ep.keys[0].secret), stale, other)
        flat = np.ones(1000, np.float32)
        for r in range(3):  # the link takes its connections' messages in turn: by now it has read them all
            got = harness.one_round(server, 2, "chain", flat, RoundSpec(0, r))
            _assert_same(got, _expected(compute_of, 2, flat, RoundSpec(0, r)))
        assert errors == []
        dropped = harness.LATEST["links"][1].dropped
        assert dropped == {"not the round in flight": 1, "another run, generation or worker": 1}
        assert harness.LATEST["links"][1].guard.counts().get("wrong_key") == 2
    finally:
        harness.stop(server, threads)


def test_confusion_counts_larger_than_a_frame_travel_down_the_chain():
    classes = 200  # 320,000 bytes of counts: two frames over TCP

    def compute_of(w):
        def compute(flat, spec):
            confusion = np.arange(classes * classes, dtype=np.int64).reshape(classes, classes) * (w + 1)
            return RoundResult(flat * np.float32(w + 1), 1.0, 1, {w: 0.0}, 0, confusion)

        return compute

    server, threads, errors = harness.start("tcp", 3, 1000, "chain", compute_of, n_classes=classes)
    try:
        flat, spec = np.ones(1000, np.float32), RoundSpec(0, 0, evaluate=True)
        _assert_same(harness.one_round(server, 3, "chain", flat, spec), _expected(compute_of, 3, flat, spec))
        assert errors == []
    finally:
        harness.stop(server, threads)


def test_a_data_error_in_the_chain_reaches_the_driver_and_stop_ends_every_worker():
    def compute_of(w):
        def compute(flat, spec):
            if w == 0:
                raise ValueError("row 7 of part-0 has 783 pixels")  # a user error: the round fails, not the task
            return RoundResult(flat.copy(), 0.0, 1, {w: 0.0})

        return compute

    server, threads, errors = harness.start("ipc", 3, 1000, "chain", compute_of)
    try:
        server.begin_round()
        for w in range(3):
            server.send(w, np.ones(1000, np.float32), RoundSpec(0, 0))
        kind, _, w, info = server.poll(30)
        assert (kind, w, info["type"]) == ("error", 0, "ValueError") and "783 pixels" in info["error"]
    finally:
        harness.stop(server, threads)  # workers 1 and 2 wait for their predecessors: the stop frees them
    assert not any(t.is_alive() for t in threads) and errors == []
