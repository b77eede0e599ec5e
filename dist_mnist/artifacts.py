"""Files a run writes and reads: atomic writes, model .npz + JSON, checkpoints.

Nothing here uses pickle: arrays are .npz loaded with allow_pickle=False, the rest is JSON.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from dist_mnist.nn.model import Params

MODEL_NPZ, MODEL_JSON = "model.npz", "model.json"
CHECKPOINT_NPZ = "checkpoint.npz"


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync, then rename over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from other users
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: str | os.PathLike, obj: object) -> None:
    """JSON, indented, written atomically."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, allow_nan=False) + "\n").encode())


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """Plain arrays as the bytes of an uncompressed .npz."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
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
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


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


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an .npz, refusing pickled objects; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return parse_npz(path.read_bytes(), str(path))


def parse_npz(data: bytes, where: str) -> dict[str, np.ndarray]:
    """All arrays of the bytes of an .npz, refusing pickled objects; errors name `where`."""
    buf = io.BytesIO(data)
    if not zipfile.is_zipfile(buf):
        raise ValueError(f"{where}: not a valid .npz (not a zip archive)")
    buf.seek(0)  # is_zipfile leaves the position at the end
    try:
        with np.load(buf, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise ValueError(f"{where}: contains a pickled object array, refused (not loaded)") from None
        raise ValueError(f"{where}: not a valid .npz ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{where}: not a valid .npz ({e})") from None


def check_layer_sizes(meta: dict, where: str) -> list[int]:
    """model.json's 'layer_sizes': a list of at least two positive ints; errors name `where`."""
    sizes = meta.get("layer_sizes")
    if not (isinstance(sizes, list) and len(sizes) >= 2 and all(isinstance(s, int) and s > 0 for s in sizes)):
        raise ValueError(f"{where}: 'layer_sizes' must be a list of positive ints, got {sizes!r}")
    return sizes


def check_params(params: dict[str, np.ndarray], layer_sizes: list[int], where: str) -> Params:
    """Keys W0,b0,... with float32 shapes matching layer_sizes; errors name `where`."""
    expected = {}
    for i, (n_in, n_out) in enumerate(zip(layer_sizes[:-1], layer_sizes[1:])):
        expected[f"W{i}"], expected[f"b{i}"] = (n_in, n_out), (n_out,)
    missing = [k for k in expected if k not in params]
    if missing:
        raise ValueError(f"{where}: missing arrays {missing} for layers {layer_sizes}")
    extra = sorted(set(params) - set(expected))
    if extra:
        raise ValueError(f"{where}: unexpected arrays {extra} for layers {layer_sizes}")
    for k, shape in expected.items():
        a = params[k]
        if a.dtype != np.float32:
            raise ValueError(f"{where}: array {k} has dtype {a.dtype}, expected float32")
        if a.shape != shape:
            raise ValueError(f"{where}: array {k} has shape {a.shape}, expected {shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{where}: array {k} has NaN or inf values")
    return {k: params[k] for k in expected}


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
    params = check_params(read_npz(run_dir / MODEL_NPZ), sizes, str(run_dir / MODEL_NPZ))
    return params, meta


def save_checkpoint(run_dir: str | os.PathLike, params: Params, state: Params, meta: dict) -> None:
    """One checkpoint.npz: 'param/K', 'state/K' arrays and the JSON meta as a uint8 array.

    A single file renamed into place, so the arrays and the counters can never disagree.
    """
    arrays = {f"param/{k}": v for k, v in params.items()}
    arrays.update({f"state/{k}": v for k, v in state.items()})
    arrays["meta"] = np.frombuffer(json.dumps(meta, allow_nan=False).encode(), dtype=np.uint8)
    atomic_write_npz(Path(run_dir) / CHECKPOINT_NPZ, arrays)


def load_checkpoint(run_dir: str | os.PathLike) -> tuple[Params, Params, dict]:
    """(params, updater state, meta) of the last checkpoint in run_dir."""
    path = Path(run_dir) / CHECKPOINT_NPZ
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: no checkpoint to resume from ({CHECKPOINT_NPZ} is missing)")
    arrays = read_npz(path)
    if "meta" not in arrays:
        raise ValueError(f"{path}: not a dist-mnist checkpoint (no 'meta' array)")
    meta = json.loads(arrays.pop("meta").tobytes())
    params = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("param/")}
    state = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("state/")}
    return params, state, meta
