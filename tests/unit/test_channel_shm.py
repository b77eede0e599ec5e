"""The local channel's vectors through /dev/shm (dist_mnist.channel.shm): the same results as in
the socket's frames, files as private as the socket, per generation, and gone at shutdown."""

from __future__ import annotations

import os
import queue
import shutil
import stat
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from dist_mnist.channel import messages as messages
from dist_mnist.channel import shm as channel_shm
from dist_mnist.channel.server import RoundServer
from dist_mnist.channel.worker import serve_rounds
from dist_mnist.rounds import RoundResult, RoundSpec

from ..support import REPO


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
        assert sorted(os.listdir(directory)) == ["g1-params", "g1-sums-0", "g1-sums-1", "lock"]
        assert all(stat.S_IMODE(os.stat(os.path.join(directory, f)).st_mode) == 0o600 for f in os.listdir(directory))
        late = channel_shm.view(directory, 1, channel_shm.sums_name(0), writable=True)  # a task of generation 1
        srv.start_generation(2)
        assert sorted(os.listdir(directory)) == ["g2-params", "g2-sums-0", "g2-sums-1", "lock"]
        late[:] = 7.0  # what it writes now lands in an unlinked file, not where generation 2 is read
        assert not srv.shm_sums[0].any()
    finally:
        srv.shutdown()
    assert not os.path.exists(directory)


def test_without_room_in_dev_shm_the_vectors_stay_in_the_frames(tmp_path):
    assert channel_shm.make_dir(2, 10**12) is None  # 12 TB of vectors: no room, no files
    assert channel_shm.make_dir(1, 10, root=str(tmp_path / "missing")) is None


def test_a_result_claiming_shared_memory_the_driver_did_not_set_up_is_malformed():
    meta = {"floats": 10, "classes": None, "shm": True, "loss": 1.0, "n": 1, "seconds": {}, "shard_bytes": 0}
    assert messages.decode_result(meta, [], None) is None
    assert messages.decode_result(meta, [], np.zeros(5, np.float32)) is None  # more floats than the file holds
    assert messages.decode_result(meta, [b"extra"], np.zeros(10, np.float32)) is None  # frames it did not declare
    ok = messages.decode_result(meta, [], np.arange(10, dtype=np.float32))
    assert ok is not None and ok.sums.tolist() == list(range(10))


def _free_pid() -> int:
    """A pid no process of this PID namespace has."""
    taken = {int(p) for p in os.listdir("/proc") if p.isdigit()}
    return next(p for p in range(max(taken) + 1000, 4_000_000) if p not in taken)


OWNER = """
import os, sys, time
from dist_mnist.channel import shm
want = int(sys.argv[2])
with open("/proc/sys/kernel/ns_last_pid", "w") as f:  # the next process of this namespace gets `want`
    f.write(str(want - 1))
pid = os.fork()
if pid == 0:
    made = shm.make_dir(1, 10, root=sys.argv[1])
    print(made, flush=True)
    time.sleep(60)
    os._exit(0)
os.waitpid(pid, 0)
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)")
def test_a_live_run_in_another_pid_namespace_keeps_its_directory(tmp_path):
    """Its pid means nothing here (no such process in this namespace): its lock says it runs."""
    pid = _free_pid()
    owner = subprocess.Popen(
        [
            "unshare",
            "--pid",
            "--fork",
            "--kill-child",
            "--mount-proc",
            sys.executable,
            "-c",
            OWNER,
            str(tmp_path),
            str(pid),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        made = owner.stdout.readline().strip()
        assert os.path.basename(made).startswith(f"{channel_shm.PREFIX}{pid}-") and not os.path.exists(f"/proc/{pid}")
        assert channel_shm.sweep(str(tmp_path)) == [] and os.path.isdir(made)
    finally:
        owner.kill()
        owner.wait(timeout=30)
    deadline = time.monotonic() + 30  # the namespace's processes end with its first one; then the lock is free
    while time.monotonic() < deadline and not channel_shm.sweep(str(tmp_path)):
        time.sleep(0.1)
    assert not os.path.exists(made)


def test_a_dead_owners_directory_goes_and_a_live_ones_stays(tmp_path):
    mine = channel_shm.make_dir(1, 10, root=str(tmp_path))  # held by this process: kept
    code = f"from dist_mnist.channel import shm; print(shm.make_dir(1, 10, root={str(tmp_path)!r}))"
    dead = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    dead = dead.stdout.strip()  # its maker exited without remove_dir: a killed driver's
    young = tmp_path / f"{channel_shm.MAKING}young"  # being made by someone, no lock yet: kept
    young.mkdir()
    stale = tmp_path / f"{channel_shm.MAKING}stale"  # a maker that died making it: gone
    stale.mkdir()
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    other = tmp_path / "dist-mnist-notours"
    other.mkdir()  # no lock file, not being made: not judged
    try:
        assert sorted(channel_shm.sweep(str(tmp_path))) == sorted([dead, str(stale)])
        assert all(os.path.isdir(p) for p in (mine, young, other))
    finally:
        channel_shm.remove_dir(mine)


FULL_SHM = """
import os, sys
import numpy as np
from dist_mnist.channel.server import RoundServer

def fill():
    with open("/dev/shm/filler", "wb") as f:
        try:
            while True:
                f.write(b"x" * (1 << 20)); f.flush()
        except OSError:
            pass

lines = []
if sys.argv[1] == "after":  # the files are made, then something else takes the rest of /dev/shm
    srv = RoundServer("ipc", "127.0.0.1", 0, 1, 250_000, 10, log=lines.append)
    srv.start_generation(1)
    fill()
    srv.shm_params[:] = np.float32(1.0)  # every page written: sparse files would die of SIGBUS here
    print("written", int(srv.shm_params.sum()), bool(srv.endpoint.shm))
else:  # /dev/shm filled between the run's start and a generation's files
    srv = RoundServer("ipc", "127.0.0.1", 0, 1, 250_000, 10, log=lines.append)
    fill()
    srv.start_generation(1)
    print("frames", srv.shm_params is None, repr(srv.endpoint.shm), lines)
srv.shutdown()
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)")
@pytest.mark.parametrize("when", ["after", "before"])
def test_a_full_dev_shm_never_kills_the_driver(when, tmp_path):
    """/dev/shm is a 16 MiB tmpfs of a private mount namespace (the host's is never filled)."""
    (tmp_path / "full.py").write_text(FULL_SHM)
    script = f"mount -t tmpfs -o size=16m tmpfs /dev/shm && exec {sys.executable} {tmp_path / 'full.py'} {when}"
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=False,
    )
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])  # -7 would be SIGBUS
    if when == "after":
        assert done.stdout.strip() == "written 250000 True"
    else:
        assert done.stdout.startswith("frames True '' ["), done.stdout
        assert "channel: the vectors travel in the socket's frames from now on (/dev/shm/dist-mnist-" in done.stdout
        assert "No space left on device" in done.stdout


def test_a_directory_removed_under_a_live_run_means_the_frames_not_a_trace():
    srv = RoundServer("ipc", "127.0.0.1", 0, 1, 1000, 10, log=(lines := []).append)
    errors: queue.Queue = queue.Queue()
    try:
        srv.start_generation(1)
        thread = _serve(srv.endpoint, 1, errors)
        assert srv.poll(30)[:3] == ("hello", 1, 0)
        shutil.rmtree(srv.endpoint.shm)  # by hand, a cleaner, another run's sweep: the worker cannot open it
        srv.begin_round()
        srv.send(0, np.ones(10, np.float32), RoundSpec(0, 0))
        kind, _gen, _w, info = srv.poll(30)
        assert kind == "error" and info["type"] == "SharedMemoryGone", info
        srv.start_generation(2)  # the relaunch: no directory to make files in, so the frames
        assert srv.endpoint.shm == "" and srv.shm is None
        assert lines and lines[0].startswith("channel: the vectors travel in the socket's frames from now on")
        thread.join(timeout=30)  # told to stop as a late worker of generation 1; it ends without a trace
        second = _serve(srv.endpoint, 2, errors)
        assert srv.poll(30)[:3] == ("hello", 2, 0)
        srv.begin_round()
        srv.send(0, np.ones(10, np.float32), RoundSpec(0, 1))
        kind, _gen, _w, result = srv.poll(30)
        assert kind == "result" and np.array_equal(result.sums, np.full(10, np.float32(1.1) + np.float32(1)))
        srv.stop_workers()
        second.join(timeout=30)
        assert errors.empty()
    finally:
        srv.shutdown()
