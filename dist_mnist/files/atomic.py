"""Atomic writes: a file or a directory appears whole or not at all, and a refused write is one line.

Every file dist-mnist writes goes through here: a temporary sibling, fsync, one rename over the
target. No pickle, no Spark."""

from __future__ import annotations

import contextlib
import errno
import glob
import io
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from dist_mnist.files.paths import RunInUse, run_lock
from dist_mnist.hints import Log

# the system refused a write: full disk or quota, no file handles, read-only or no permission
WRITE_HELP = {
    errno.ENOSPC: "free disk space",
    errno.EDQUOT: "free space within your quota",
    errno.EMFILE: "raise the open-files limit (ulimit -n)",
    errno.ENFILE: "close other programs' files",
    errno.EROFS: "write to a writable filesystem",
    errno.EFBIG: "write to a filesystem for larger files",
    errno.EIO: "check the disk",
    errno.EACCES: "check the permissions",
    errno.EPERM: "check the permissions",
}


class WriteFailed(OSError, RuntimeError):
    """The system refused a write (see WRITE_HELP); nothing was replaced.

    An OSError with the errno, and a RuntimeError: the CLI reports it in one line, exit 1.
    """

    def __str__(self) -> str:
        return str(self.strerror)


def write_failure(e: BaseException, path: str | os.PathLike) -> WriteFailed | None:
    """`e` as a one-line WriteFailed naming `path` when the system refused the write, else None."""
    if isinstance(e, WriteFailed) or not isinstance(e, OSError) or e.errno not in WRITE_HELP:
        return None
    name = errno.errorcode.get(e.errno, str(e.errno))
    return WriteFailed(
        e.errno,
        f"{path}: not written: {os.strerror(e.errno)} ({name}); nothing was replaced (help: {WRITE_HELP[e.errno]})",
    )


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync, then rename over `path`."""
    path, tmp = Path(path), None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from other users
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        failure = write_failure(e, path)
        if failure is None:
            raise
        raise failure from e


def atomic_write_json(path: str | os.PathLike, obj: object) -> None:
    """JSON, indented, written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Plain arrays as the bytes of an uncompressed .npz."""
    buf = io.BytesIO()
    # numpy's stub lets a **dict fill savez's allow_pickle (a bool); our keys are array names, and
    # passing allow_pickle=False itself would store an array of that name with numpy < 2.1
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def atomic_write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Plain arrays in an uncompressed .npz, written atomically."""
    atomic_write_bytes(path, npz_bytes(arrays))


def replace_directory(new: Path, final: Path) -> None:
    """Rename directory `new` to `final`: an existing `final` is moved aside in one rename, `new`
    renamed in, then the old one removed. Killed between the two renames, `final` is missing and
    its old copy whole beside it (`.NAME.old-...`), which `recover` puts back."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}-{secrets.token_hex(3)}")
        os.replace(final, old)
        os.replace(new, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, final)


def leftovers(final: Path) -> tuple[list[Path], list[Path]]:
    """What interrupted writes of `final` left beside it: (old copies moved aside, newest first;
    temporary directories and files)."""
    aside = sorted(final.parent.glob(f".{glob.escape(final.name)}.old-*"), key=_mtime, reverse=True)
    temporary = sorted(final.parent.glob(f".{glob.escape(final.name)}.*.tmp"))
    return aside, temporary


def _mtime(path: Path) -> float:
    try:
        return path.lstat().st_mtime
    except OSError:
        return 0.0


def recover(final: Path, log: Log = print) -> None:
    """Put back what an interrupted replacement of `final` left, and say so: the old copy moved
    aside when `final` is missing, and nothing else of theirs. Only with `final`'s lock held
    (paths.run_lock): no live writer of it is then in the middle of a replacement."""
    aside, temporary = leftovers(final)
    if aside and not final.exists() and not final.is_symlink():
        os.replace(aside[0], final)
        log(f"{final}: put back its previous copy ({aside[0].name}), which an interrupted replacement had moved aside")
        aside = aside[1:]
    for path in aside + temporary:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if aside or temporary:
        log(f"{final}: removed what an interrupted write had left: {', '.join(p.name for p in aside + temporary)}")


def recover_if_idle(final: str | os.PathLike, log: Log = print) -> None:
    """`recover`, for a reader of `final`: only where no writer holds its lock, and only where
    this process can take it (a read-only dataset is left as it is)."""
    final = Path(final)
    if "://" in str(final) or not (leftovers(final)[0] or leftovers(final)[1]):
        return
    with contextlib.suppress(RunInUse, RuntimeError, OSError), run_lock(final, "writer"):
        recover(final, log)


@contextmanager
def atomic_directory(
    final: str | os.PathLike, overwrite: bool = False, log: Log = print, what: str = "writer"
) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success rename it to `final`.

    `final`'s lock is held throughout (one writer at a time; what a killed writer left is
    recovered first). A symlink `final` keeps pointing where it does: what it points to is
    replaced. A failure removes the temporary directory and leaves an existing `final` untouched.
    """
    final = Path(final)
    if final.is_symlink() and final.exists():
        final = Path(os.path.realpath(final))
    final.parent.mkdir(parents=True, exist_ok=True)
    with run_lock(final, what):
        recover(final, log)
        if final.exists() and not overwrite:
            raise FileExistsError(f"{final}: already exists (pass --overwrite to replace it)")
        tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's 0700 would hide the data from other users
        try:
            yield tmp
            replace_directory(tmp, final)
        except BaseException as e:
            shutil.rmtree(tmp, ignore_errors=True)
            failure = write_failure(e, final)
            if failure is None:
                raise
            raise failure from e


def read_json(path: str | os.PathLike) -> dict:
    """A JSON object from `path`; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return parse_json_object(path.read_bytes(), str(path))


def parse_json_object(data: bytes, where: str) -> dict:
    """A JSON object from the bytes of a file; errors name `where`."""
    try:
        obj = json.loads(data.decode())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{where}: expected a JSON object, found {type(obj).__name__}")
    return obj
