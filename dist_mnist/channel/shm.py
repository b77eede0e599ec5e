"""Round vectors through shared memory on a local master's channel (ipc). No Spark here.

Over a Unix socket a vector crosses the kernel twice each way (written into the socket, read out
of it): four copies of 3.18 MB per worker in a sync round, most of such a round's cost. With a
shared directory the driver writes the round's vector once into a file that every worker maps
and reads in place, and each worker writes its sums into a file of its own that the driver maps
and reads in place; the socket carries only the small messages (the round's metadata, a result's
loss, counts and confusion matrix), bound to the round as before.

The directory is a fresh 0700 one in /dev/shm (tmpfs: memory, never written to a disk), as
private as the socket's: only this user's processes on this host can open it, the same peers
that could connect to the socket. The files are per generation, so a late task of an earlier
generation never writes where the current one reads. Where /dev/shm is missing, not writable or
too small for the files, the vectors travel in the socket's frames as before (same bits).

A file's room is reserved when it is made (posix_fallocate), so a /dev/shm that something else
fills later cannot fail a write into a mapped page (SIGBUS); a reservation that fails means the
frames instead. The owner holds an flock on the directory's lock file for its life: the next
run's sweep removes only directories whose lock nobody holds (a killed driver's), whatever PID
namespace either run is in.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import mmap
import os
import shutil
import tempfile
import time

import numpy as np

SHM_ROOT = "/dev/shm"
MAX_SHARE = 0.25  # of /dev/shm's free space, at most, for one run's files
PREFIX = "dist-mnist-"  # then the driver's pid (for a reader: liveness is the lock's, never the pid's)
MAKING = ".dist-mnist-making-"  # a directory being made: renamed to PREFIX... once its lock is held
LOCK = "lock"  # in each directory; its owner holds flock on it for the directory's life
STALE_MAKING = 60.0  # seconds after which a MAKING directory with no lock held is a dead maker's
_LOCKS: dict[str, int] = {}  # directory -> the fd holding its flock, in this process


class SharedMemoryGone(RuntimeError):
    """A worker could not open its generation's shared files (the directory was removed under the
    run, /dev/shm was unmounted): the driver relaunches the stage, whose vectors then travel in frames."""


def make_dir(workers: int, max_floats: int, root: str = SHM_ROOT) -> str | None:
    """A fresh private directory for W + 1 vectors of max_floats floats, locked by this process
    until remove_dir; or None (no room, no tmpfs)."""
    need = 4 * max(max_floats, 1) * (workers + 1)
    sweep(root)
    try:
        st = os.statvfs(root)
        if not os.access(root, os.W_OK) or need > MAX_SHARE * st.f_bavail * st.f_frsize:
            return None
        making = tempfile.mkdtemp(prefix=MAKING, dir=root)  # 0700; a sweep leaves it alone while young
        fd = os.open(os.path.join(making, LOCK), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        directory = os.path.join(root, f"{PREFIX}{os.getpid()}-{os.path.basename(making)[len(MAKING) :]}")
        os.rename(making, directory)  # only now a sweep may look at it: its lock is held
    except OSError:
        return None
    _LOCKS[directory] = fd
    return directory


def sweep(root: str = SHM_ROOT) -> list[str]:
    """Remove this user's directories whose owner is gone (a driver killed before its shutdown:
    tmpfs holds memory until its files are removed): nobody holds their lock; returns them."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            ours = entry.name.startswith((PREFIX, MAKING)) and entry.is_dir(follow_symlinks=False)
            if not ours or entry.stat(follow_symlinks=False).st_uid != os.getuid() or entry.path in _LOCKS:
                continue
            if _abandoned(entry.path, making=entry.name.startswith(MAKING)):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
    return removed


def _abandoned(directory: str, making: bool) -> bool:
    """Whether nobody holds the directory's lock (taken here for a moment to know); a directory
    without a lock file is being made (young) or was left by a maker that died making it."""
    try:
        fd = os.open(os.path.join(directory, LOCK), os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        with contextlib.suppress(OSError):
            return making and time.time() - os.stat(directory).st_mtime > STALE_MAKING
        return False
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # held: its owner runs (in this PID namespace or another)
    finally:
        os.close(fd)
    return True


def path_of(directory: str, generation: int, name: str) -> str:
    return os.path.join(directory, f"g{generation}-{name}")


def params_name() -> str:
    return "params"


def sums_name(w: int) -> str:
    return f"sums-{w}"


def create_generation(directory: str, generation: int, workers: int, max_floats: int) -> None:
    """The files of one generation (the round's vector and one sums file per worker), their room
    reserved; earlier generations' files are unlinked (a late task still mapping one keeps its
    own copy). OSError (ENOSPC: no room to reserve; ENOENT: the directory is gone) leaves none."""
    for old in glob.glob(os.path.join(directory, "g*-*")):
        if not os.path.basename(old).startswith(f"g{generation}-"):
            with contextlib.suppress(OSError):
                os.unlink(old)
    made = []
    try:
        for name in [params_name(), *(sums_name(w) for w in range(workers))]:
            made.append(path_of(directory, generation, name))
            fd = os.open(made[-1], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.posix_fallocate(fd, 0, 4 * max(max_floats, 1))  # pages now: no SIGBUS on a full tmpfs later
            finally:
                os.close(fd)
    except OSError:
        for path in made:
            with contextlib.suppress(OSError):
                os.unlink(path)
        raise


def view(directory: str, generation: int, name: str, writable: bool) -> np.ndarray:
    """A float32 view of one file, mapped (read-only unless writable); the mapping lives as long as the array."""
    path = path_of(directory, generation, name)
    with open(path, "r+b" if writable else "rb") as f:
        size = os.fstat(f.fileno()).st_size
        mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ)
    return np.frombuffer(mapped, np.float32)


def remove_dir(directory: str | None) -> None:
    """Remove a directory of make_dir's, then let go of its lock."""
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        fd = _LOCKS.pop(directory, None)
        if fd is not None:
            os.close(fd)
