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
"""

from __future__ import annotations

import contextlib
import glob
import mmap
import os
import re
import shutil
import tempfile

import numpy as np

SHM_ROOT = "/dev/shm"
MAX_SHARE = 0.25  # of /dev/shm's free space, at most, for one run's files
PREFIX = "dist-mnist-"  # then the driver's pid: a killed driver's directory is removed by the next run


def make_dir(workers: int, max_floats: int, root: str = SHM_ROOT) -> str | None:
    """A fresh private directory for W + 1 vectors of max_floats floats, or None (no room, no tmpfs)."""
    need = 4 * max(max_floats, 1) * (workers + 1)
    sweep(root)
    try:
        st = os.statvfs(root)
        if not os.access(root, os.W_OK) or need > MAX_SHARE * st.f_bavail * st.f_frsize:
            return None
        return tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-", dir=root)  # 0700
    except OSError:
        return None


def sweep(root: str = SHM_ROOT) -> list[str]:
    """Remove this user's directories left by drivers that are gone (killed before their
    shutdown: tmpfs holds memory until its files are removed); returns what was removed."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(root):
            m = re.fullmatch(rf"{re.escape(PREFIX)}(\d+)-\w+", entry.name)
            if not m or not entry.is_dir(follow_symlinks=False) or entry.stat().st_uid != os.getuid():
                continue
            if not _alive(int(m.group(1))):
                shutil.rmtree(entry.path, ignore_errors=True)
                removed.append(entry.path)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def path_of(directory: str, generation: int, name: str) -> str:
    return os.path.join(directory, f"g{generation}-{name}")


def params_name() -> str:
    return "params"


def sums_name(w: int) -> str:
    return f"sums-{w}"


def create_generation(directory: str, generation: int, workers: int, max_floats: int) -> None:
    """The files of one generation (the round's vector and one sums file per worker); earlier
    generations' files are unlinked (a late task still mapping one keeps its own copy)."""
    for old in glob.glob(os.path.join(directory, "g*-*")):
        if not os.path.basename(old).startswith(f"g{generation}-"):
            with contextlib.suppress(OSError):
                os.unlink(old)
    for name in [params_name(), *(sums_name(w) for w in range(workers))]:
        fd = os.open(path_of(directory, generation, name), os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, 4 * max(max_floats, 1))
        finally:
            os.close(fd)


def view(directory: str, generation: int, name: str, writable: bool) -> np.ndarray:
    """A float32 view of one file, mapped (read-only unless writable); the mapping lives as long as the array."""
    path = path_of(directory, generation, name)
    with open(path, "r+b" if writable else "rb") as f:
        size = os.fstat(f.fileno()).st_size
        mapped = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_WRITE if writable else mmap.ACCESS_READ)
    return np.frombuffer(mapped, np.float32)


def remove_dir(directory: str | None) -> None:
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
