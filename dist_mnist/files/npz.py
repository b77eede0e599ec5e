"""Reading .npz files a user hands us: no pickle, and no zip bomb.

np.load inflates whatever sizes an archive declares; here the zip's central directory and each
member's .npy header are read first, and an archive that declares more than its reader expects
(a model: what model.json's layer sizes imply) is refused before anything is inflated.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from pathlib import Path

import numpy as np

NPZ_LIMIT = 1 << 30  # bytes an .npz may declare when its reader cannot say what it expects
NPZ_SLACK = 1 << 20  # bytes beyond a model's arrays (.npy headers, zip records)
NPZ_MEMBERS = 4096  # arrays an .npz may hold; ours hold a few per layer


class Refused(ValueError):
    """An .npz refused for what it declares, before anything was inflated."""


def read_npz(path: str | os.PathLike, max_bytes: int = NPZ_LIMIT) -> dict[str, np.ndarray]:
    """All arrays of an .npz, refusing pickled objects and more than `max_bytes` inflated; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size > max_bytes + NPZ_SLACK:  # even stored uncompressed it would inflate past the limit
        raise Refused(f"{path}: {path.stat().st_size:,} bytes, more than the {max_bytes:,} expected; refused")
    return parse_npz(path.read_bytes(), str(path), max_bytes)


def parse_npz(data: bytes, where: str, max_bytes: int = NPZ_LIMIT) -> dict[str, np.ndarray]:
    """All arrays of the bytes of an .npz, refusing pickled objects; errors name `where`.

    The sizes the archive declares are checked against `max_bytes` before anything is inflated.
    """
    buf = io.BytesIO(data)
    if not zipfile.is_zipfile(buf):
        raise ValueError(f"{where}: not a valid .npz (not a zip archive)")
    buf.seek(0)  # is_zipfile leaves the position at the end
    try:
        with zipfile.ZipFile(buf) as zf:
            check_npz_sizes(zf, where, max_bytes)
        buf.seek(0)
        with np.load(buf, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Refused:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise Refused(f"{where}: contains a pickled object array, refused (not loaded)") from None
        raise ValueError(f"{where}: not a valid .npz ({e})") from None
    except (OSError, EOFError, zipfile.BadZipFile, NotImplementedError) as e:
        raise ValueError(f"{where}: not a valid .npz ({e})") from None


def check_npz_sizes(zf: zipfile.ZipFile, where: str, max_bytes: int) -> None:
    """Refuse an .npz that declares more than `max_bytes`, or a member whose .npy header
    disagrees with the size the archive declares for it; only the headers are inflated."""
    members = zf.infolist()
    if len(members) > NPZ_MEMBERS:
        raise Refused(f"{where}: {len(members)} arrays, more than the {NPZ_MEMBERS} allowed; refused")
    declared = sum(m.file_size for m in members)
    if declared > max_bytes:
        raise Refused(
            f"{where}: declares {declared:,} bytes of arrays, more than the {max_bytes:,} expected; "
            f"refused before inflating"
        )
    for m in members:
        if not m.filename.endswith(".npy"):
            raise Refused(f"{where}: member {m.filename!r} is not an .npy array")
        with zf.open(m) as f:
            version = np.lib.format.read_magic(f)
            if version not in ((1, 0), (2, 0)):
                raise Refused(f"{where}: array {m.filename[:-4]} has .npy format {version}, expected 1.0 or 2.0")
            fmt = np.lib.format
            shape, _, dtype = (fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0)(f)
            if dtype.hasobject:
                raise Refused(f"{where}: contains a pickled object array, refused (not loaded)")
            size = f.tell() + math.prod(shape) * dtype.itemsize
        if size != m.file_size:
            raise Refused(
                f"{where}: array {m.filename[:-4]} declares {m.file_size:,} bytes but its header "
                f"describes {size:,} ({dtype} {shape}); refused"
            )
