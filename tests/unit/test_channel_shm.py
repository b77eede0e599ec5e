"""The local channel's vectors through /dev/shm (dist_mnist.channel_shm): the same results as in
the socket's frames, files as private as the socket, per generation, and gone at shutdown."""

from __future__ import annotations

import os
import queue
import stat
import threading

import numpy as np
import pytest

from dist_mnist import channel_messages as messages
from dist_mnist import channel_shm
from dist_mnist.channel import RoundServer, serve_rounds
from dist_mnist.rounds import RoundResult, RoundSpec

def _has_shm() -> bool:
    made = channel_shm.make_dir(1, 1)
    channel_shm.remove_dir(made)
    return made is not None


pytestmark = pytest.mark.skipif(not _has_shm(), reason="no writable /dev/shm")


def _step(flat, spec):
    """Something with rounding in it, so equal bits mean the same floats went both ways."""
    assert not flat.flags.writeable  # read in place, never written into
    sums = (flat * np.float32(1.1) + np.float32(spec.round_in_epoch)).astype(np.float32)
    confusion = np.arange(100, dtype=np.int64).reshape(10, 10) if spec.evaluate else None
    return RoundResult(sums, float(flat.sum()), 2, {0: 0.25}, 5, confusion)


def _serve(endpoint, generation, errors):
    def run():
        try:
            serve_rounds(endpoint, {"generation": generation, "worker": 0}, _step)
        except Exception as e:  # noqa: BLE001 - handed to the test
            errors.put(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _rounds(shared_memory: bool, sizes: list[int]) -> tuple[list, int]:
    """Each size's result over a fresh ipc server with or without shared memory, and the bytes received."""
    srv = RoundServer("ipc", "127.0.0.1", 0, 1, 1 << 20, 10, shared_memory=shared_memory)
    assert bool(srv.endpoint.shm) == shared_memory
    errors: queue.Queue = queue.Queue()
    try:
        srv.start_generation(1)
        thread = _serve(srv.endpoint, 1, errors)
        assert srv.poll(30)[:3] == ("hello", 1, 0)
        out = []
        for r, n in enumerate(sizes):
            srv.begin_round()
            srv.send(0, np.linspace(-1, 1, n, dtype=np.float32), RoundSpec(0, r, evaluate=r % 2 == 1))
            kind, _gen, _w, result = srv.poll(30)
            assert kind == "result"
            confusion = None if result.confusion is None else result.confusion.copy()
            out.append((result.sums.copy(), result.loss, result.n, confusion))
        srv.stop_workers()
        thread.join(timeout=30)
        assert errors.empty() and srv.dropped == {}
        return out, srv.received_bytes
    finally:
        srv.shutdown()


def test_vectors_through_shared_memory_give_the_bits_of_the_frames():
    sizes = [1000, 795_010, 17, 795_010]
    through_files, received_files = _rounds(True, sizes)
    through_frames, received_frames = _rounds(False, sizes)
    for a, b in zip(through_files, through_frames, strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        assert a[0].dtype == np.float32 and a[1:3] == b[1:3]
        assert (a[3] is None and b[3] is None) or np.array_equal(a[3], b[3])
    # the driver counts what it read from the files as received: the same vectors came in
    assert received_files >= 4 * sum(sizes) and received_frames >= 4 * sum(sizes)


def test_the_files_are_private_per_generation_and_removed_at_shutdown():
    srv = RoundServer("ipc", "127.0.0.1", 0, 2, 1000, 10)
    directory = srv.endpoint.shm
    try:
        mode = os.stat(directory)
        assert stat.S_IMODE(mode.st_mode) == 0o700 and mode.st_uid == os.getuid()
        assert directory.startswith(channel_shm.SHM_ROOT + "/")
        srv.start_generation(1)
        assert sorted(os.listdir(directory)) == ["g1-params", "g1-sums-0", "g1-sums-1"]
        assert all(stat.S_IMODE(os.stat(os.path.join(directory, f)).st_mode) == 0o600 for f in os.listdir(directory))
        late = channel_shm.view(directory, 1, channel_shm.sums_name(0), writable=True)  # a task of generation 1
        srv.start_generation(2)
        assert sorted(os.listdir(directory)) == ["g2-params", "g2-sums-0", "g2-sums-1"]
        late[:] = 7.0  # what it writes now lands in an unlinked file, not where generation 2 is read
        assert not srv.shm_sums[0].any()
    finally:
        srv.shutdown()
    assert not os.path.exists(directory)


def test_without_room_in_dev_shm_the_vectors_stay_in_the_frames(tmp_path):
    assert channel_shm.make_dir(2, 10**12) is None  # 12 TB of vectors: no room, no files
    assert channel_shm.make_dir(1, 10, root=str(tmp_path / "missing")) is None


def test_a_result_claiming_shared_memory_the_driver_did_not_set_up_is_malformed():
    meta = {"floats": 10, "classes": None, "shm": True, "loss": 1.0, "n": 1, "seconds": {}, "resident_bytes": 0}
    assert messages.decode_result(meta, [], None) is None
    assert messages.decode_result(meta, [], np.zeros(5, np.float32)) is None  # more floats than the file holds
    assert messages.decode_result(meta, [b"extra"], np.zeros(10, np.float32)) is None  # frames it did not declare
    ok = messages.decode_result(meta, [], np.arange(10, dtype=np.float32))
    assert ok is not None and ok.sums.tolist() == list(range(10))


def test_a_killed_drivers_directory_is_removed_by_the_next_run(tmp_path):
    import subprocess
    import sys

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()  # a pid that has ended
    left = tmp_path / f"{channel_shm.PREFIX}{gone}-abc123"
    left.mkdir()
    (left / "g1-params").write_bytes(b"\0" * 64)
    mine = tmp_path / f"{channel_shm.PREFIX}{os.getpid()}-def456"  # a live driver's: kept
    mine.mkdir()
    other = tmp_path / "dist-mnist-notapid"  # not ours by name: kept
    other.mkdir()
    assert channel_shm.sweep(str(tmp_path)) == [str(left)]
    assert not left.exists() and mine.exists() and other.exists()
    made = channel_shm.make_dir(1, 10, root=str(tmp_path))
    assert made is not None and os.path.basename(made).startswith(f"{channel_shm.PREFIX}{os.getpid()}-")
