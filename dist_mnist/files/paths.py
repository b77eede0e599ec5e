"""Where a command may write: never over, inside or around one of its inputs, only where it can
write, and one writer of a run directory at a time.

Checked before anything is touched (the CLI runs these checks before Spark starts, the library
entry points again). Local paths are compared after resolving symlinks, and also by inode where
they exist; URIs (hdfs://, s3a://) textually, after normalising. No Spark here.
"""

from __future__ import annotations

import errno
import fcntl
import os
import posixpath
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

_HELD: dict[str, tuple[int, int]] = {}  # lock file -> (fd, depth) of the locks this process holds


class RunInUse(RuntimeError):
    """Another process holds the run directory's lock."""


def local_path(path: str) -> str:
    """A plain path for a file: URI; other URIs unchanged."""
    # Spark lists local files as file:/... or file:///...; pyarrow wants a plain path there
    # and takes other URIs (hdfs://, s3://) through its own filesystems.
    if path.startswith("file:"):
        path = path[len("file:") :]
        while path.startswith("//"):
            path = path[1:]
    return path


def _resolved(path: str | os.PathLike) -> tuple[str, str]:
    """(filesystem, normalised path): ("", realpath) for a local path, ("scheme://host", path) for a URI."""
    text = local_path(str(path))
    if "://" in text:
        scheme, rest = text.split("://", 1)
        host, _, tail = rest.partition("/")
        return f"{scheme.lower()}://{host}", posixpath.normpath("/" + tail)
    return "", os.path.realpath(text)


def _key(path: str | os.PathLike) -> tuple[int, int] | None:
    """(device, inode) of an existing local path, else None."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _ancestor_keys(path: str) -> set[tuple[int, int]]:
    """(device, inode) of every existing ancestor of a local path."""
    return {k for q in Path(path).parents if (k := _key(q)) is not None}


def _relation(out: str | os.PathLike, other: str | os.PathLike) -> str | None:
    """How `out` lies to `other`: 'is', 'is inside', 'contains', or None when apart."""
    (fs_o, o), (fs_p, p) = _resolved(out), _resolved(other)
    if fs_o != fs_p:
        return None
    # local paths also by inode, which sees through bind mounts and case-insensitive names
    ko, kp = (_key(o), _key(p)) if fs_o == "" else (None, None)
    if o == p or (ko is not None and ko == kp):
        return "is"
    if o.startswith(p.rstrip("/") + "/") or (kp is not None and kp in _ancestor_keys(o)):
        return "is inside"
    if p.startswith(o.rstrip("/") + "/") or (ko is not None and ko in _ancestor_keys(p)):
        return "contains"
    return None


def refuse_overlap(out: str | os.PathLike, out_flag: str, inputs: Mapping[str, str | os.PathLike | None]) -> None:
    """ValueError when `out` is, is inside or contains one of `inputs` ({flag: path}; None skipped).

    A protected input is everything at and under its path: protect a run's model by its files
    (RUN/model.npz, RUN/model.json) to allow outputs beside them.
    """
    for flag, path in inputs.items():
        relation = None if path is None else _relation(out, path)
        if relation:
            real = _resolved(out)[1]
            shown = f" (resolved: {real})" if "://" not in str(out) and real != os.path.abspath(out) else ""
            raise ValueError(
                f"{out_flag} {out}{shown} {relation} {flag} {path}: writing there could destroy or "
                f"corrupt it; choose an {out_flag} apart from it (refused, nothing was touched)"
            )


def check_writable_dir(out: str | os.PathLike, out_flag: str) -> None:
    """ValueError unless `out` (a directory to create or replace) can be written, found by trying.

    `out` must not be a dangling symlink or a file, and its nearest existing ancestor must be a
    directory in which a file can be created (a temporary one, removed at once).
    """
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise ValueError(
            f"{out_flag} {out} is a symlink to {os.readlink(out)}, which does not exist; "
            f"remove the link or choose another {out_flag}"
        )
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out_flag} {out} is a file, not a directory; choose another {out_flag}")
    parent = next(p for p in out.absolute().parents if p.exists() or p.is_symlink())
    if not parent.is_dir():
        raise ValueError(f"{out_flag} {out}: {parent} is not a directory; choose another {out_flag}")
    try:
        fd, probe = tempfile.mkstemp(dir=parent, prefix=".dist-mnist-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise ValueError(
            f"{out_flag} {out}: cannot write in {parent} ({e.strerror or e}); choose another {out_flag}"
        ) from None


def lock_path(run_dir: Path) -> Path:
    """RUN's lock file, beside it: .RUN.lock."""
    return run_dir.with_name(f".{run_dir.name}.lock")


@contextmanager
def run_lock(run_dir: str | os.PathLike, what: str = "train") -> Iterator[None]:
    """Hold an OS lock (flock) on RUN for this block; RunInUse when another process holds it.

    The kernel drops the lock when its holder dies, so a killed run never leaves RUN locked.
    Re-entrant within a process (the CLI takes it before Spark starts, train() again).
    """
    path = lock_path(Path(run_dir).absolute())
    key = os.path.realpath(path)
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
    else:
        fd = _acquire(path, Path(run_dir), what)
        _HELD[key] = (fd, 1)
    try:
        yield
    finally:
        fd, depth = _HELD.pop(key)
        if depth > 1:
            _HELD[key] = (fd, depth - 1)
        else:
            path.unlink(missing_ok=True)  # before unlocking: a waiter then finds the inode gone and retries
            os.close(fd)


def _acquire(path: Path, run_dir: Path, what: str) -> int:
    """An fd holding flock on `path`, the inode still at `path` (not one a releasing holder removed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:  # not inherited by the processes this one starts (Python's default): the JVM never holds it
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as e:
            raise RuntimeError(f"{path}: cannot create the lock file of {run_dir} ({e.strerror})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                raise RuntimeError(f"{path}: cannot lock {run_dir} ({e.strerror})") from None
            raise RunInUse(
                f"{run_dir} is in use by another {what} (pid {holder}); wait for it to end or choose another --out"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)
