"""Files a run writes and reads: atomic writes, model .npz + JSON (checkpoints: dist_mnist.checkpoint).

Nothing here uses pickle: arrays are .npz loaded with allow_pickle=False, the rest is JSON.
"""

from __future__ import annotations

import errno
import io
import itertools
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from dist_mnist.nn.model import Params
from dist_mnist.npz import NPZ_SLACK, read_npz

MODEL_NPZ, MODEL_JSON = "model.npz", "model.json"
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
    """Rename directory `new` to `final`; an existing `final` stays whole until then."""
    if final.exists():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(new, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, final)


@contextmanager
def atomic_directory(final: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success rename it to `final`.

    A failure removes the temporary directory and leaves an existing `final` untouched.
    """
    final = Path(final)
    if final.exists() and not overwrite:
        raise FileExistsError(f"{final}: already exists (pass --overwrite to replace it)")
    final.parent.mkdir(parents=True, exist_ok=True)
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


def check_layer_sizes(meta: dict, where: str) -> list[int]:
    """model.json's 'layer_sizes': a list of at least two positive ints; errors name `where`."""
    sizes = meta.get("layer_sizes")
    if not (isinstance(sizes, list) and len(sizes) >= 2 and all(isinstance(s, int) and s > 0 for s in sizes)):
        raise ValueError(f"{where}: 'layer_sizes' must be a list of positive ints, got {sizes!r}")
    return sizes


def param_shapes(layer_sizes: list[int] | tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """{"W0": (n_in, n_out), "b0": (n_out,), ...}: the arrays of an MLP with these layer sizes."""
    shapes: dict[str, tuple[int, ...]] = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(layer_sizes)):
        shapes[f"W{i}"], shapes[f"b{i}"] = (n_in, n_out), (n_out,)
    return shapes


def model_bytes(layer_sizes: list[int] | tuple[int, ...]) -> int:
    """The float32 bytes of an MLP's parameters."""
    return 4 * sum(math.prod(shape) for shape in param_shapes(layer_sizes).values())


def check_params(params: dict[str, np.ndarray], layer_sizes: list[int], where: str) -> Params:
    """Keys W0,b0,... with float32 shapes matching layer_sizes; errors name `where`."""
    return check_arrays(params, param_shapes(layer_sizes), where, f"layers {list(layer_sizes)}")


def check_arrays(
    arrays: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]], where: str, what: str, prefix: str = ""
) -> Params:
    """Exactly the keys of `shapes`, each float32 of that shape and finite; errors name `where`,
    the array (as `prefix` + key) and `what` the shapes come from."""
    missing = [prefix + k for k in shapes if k not in arrays]
    if missing:
        raise ValueError(f"{where}: missing arrays {missing} for {what}")
    extra = sorted(prefix + k for k in set(arrays) - set(shapes))
    if extra:
        raise ValueError(f"{where}: unexpected arrays {extra} for {what}")
    for k, shape in shapes.items():
        a = arrays[k]
        if a.dtype != np.float32:
            raise ValueError(f"{where}: array {prefix}{k} has dtype {a.dtype}, expected float32")
        if a.shape != shape:
            raise ValueError(f"{where}: array {prefix}{k} has shape {a.shape}, expected {shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{where}: array {prefix}{k} has NaN or inf values")
    return {k: arrays[k] for k in shapes}


def model_files(run_dir: str | os.PathLike, flag: str = "--model") -> dict[str, Path]:
    """{"--model's model.npz": RUN/model.npz, ...}: what an output must not overwrite (paths.refuse_overlap)."""
    return {f"{flag}'s {name}": Path(run_dir) / name for name in (MODEL_NPZ, MODEL_JSON)}


def save_model(run_dir: str | os.PathLike, params: Params, meta: dict) -> None:
    """model.npz (W0, b0, ... float32) then model.json, each atomically."""
    run_dir = Path(run_dir)
    atomic_write_npz(run_dir / MODEL_NPZ, params)
    atomic_write_json(run_dir / MODEL_JSON, meta)


def load_model(run_dir: str | os.PathLike) -> tuple[Params, dict]:
    """Parameters and metadata of a saved model, checked against each other."""
    run_dir = Path(run_dir)
    meta = read_json(run_dir / MODEL_JSON)
    sizes = check_layer_sizes(meta, str(run_dir / MODEL_JSON))
    arrays = read_npz(run_dir / MODEL_NPZ, model_bytes(sizes) + NPZ_SLACK)  # no more than model.json implies
    params = check_params(arrays, sizes, str(run_dir / MODEL_NPZ))
    return params, meta
