"""An .npz is checked by the sizes it declares before anything is inflated: a 2 MB zip bomb that
inflates to 2 GiB is refused at once, its members never inflated, and so is a member whose .npy
header disagrees with the size the archive declares for it."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from dist_mnist.files.npz import Refused, parse_npz

from ..support.cli import one_line_error
from ..support.tiny_runs import tiny_data, train_cli

CHUNK = 64 << 20  # zeros deflated once and repeated: deflate output after a full flush depends only on its input
BOMB_CHUNKS = 32  # 2 GiB of zeros


def _npy_header(descr: str, shape: tuple[int, ...]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


def zip_bomb(path: Path, name: str = "W0.npy", chunks: int = BOMB_CHUNKS) -> int:
    """A valid .npz holding one float32 array of chunks x 64 MiB zeros, deflated to ~1/1000; its inflated size."""
    header = _npy_header("<f4", (chunks * CHUNK // 4,))
    zeros = bytes(CHUNK)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflate.compress(header) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH)
    assert deflate.compress(zeros) + deflate.flush(zlib.Z_FULL_FLUSH) == block
    stream = head + block * chunks + deflate.flush()
    crc = zlib.crc32(header)
    for _ in range(chunks):
        crc = zlib.crc32(zeros, crc)
    size, raw = len(header) + chunks * CHUNK, name.encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(stream), size, len(raw), 0) + raw
    central = (
        struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(stream), size, len(raw), 0, 0, 0, 0, 0, 0
        )
        + raw
    )
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central), len(local) + len(stream), 0)
    path.write_bytes(local + stream + central + end)
    return size


@pytest.fixture(scope="module")
def bomb(tmp_path_factory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("bomb") / "bomb.npz"
    return path, zip_bomb(path)


def test_the_bomb_is_a_real_one(tmp_path):
    path = tmp_path / "small.npz"
    size = zip_bomb(path, chunks=1)  # the same construction, 64 MiB: np.load reads it back
    assert path.stat().st_size < size / 500
    with np.load(path) as z:
        a = z["W0"]
    assert a.dtype == np.float32 and a.size == CHUNK // 4 and not a.any()


# The evaluate command in a child process: its peak RSS is what the refusal cost.
CHILD = """
import json, resource, sys
import dist_mnist.spark.evaluate  # numpy, pyarrow and the rest, before the measurement starts (no JVM)
from dist_mnist.cli import commands as cli
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
code = cli.main(["evaluate", "--model", sys.argv[1], "--data", sys.argv[1] + "/test"])
print(json.dumps({"code": code, "grew_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before}))
"""


def test_zip_bomb_model_is_refused_without_inflating(bomb, tmp_path):
    path, size = bomb
    run = tmp_path / "RUN"
    run.mkdir()
    (run / "model.npz").symlink_to(path)
    (run / "model.json").write_text(json.dumps({"layer_sizes": [784, 1000, 10]}))
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(run)], capture_output=True, text=True, timeout=300, check=False
    )
    assert child.returncode == 0, child.stderr  # the child reports the command's exit code in its JSON line
    result = json.loads(child.stdout.strip().splitlines()[-1])
    err = child.stderr.strip().splitlines()
    assert result["code"] == 2 and len(err) == 1, child.stderr
    assert f"{run / 'model.npz'}: declares {size:,} bytes of arrays" in err[0] and "refused before inflating" in err[0]
    assert result["grew_kib"] < 32 * 1024, result  # the 2 GiB were never allocated (the file is 2 MB)


def test_zip_bomb_checkpoint_is_refused_on_resume(bomb, tmp_path, capsys, no_spark):
    path, size = bomb
    data = tiny_data(tmp_path / "DATA")
    (tmp_path / "RUN.partial").mkdir()
    (tmp_path / "RUN.partial" / "checkpoint.npz").symlink_to(path)
    assert train_cli(data, tmp_path / "RUN", "--resume") == 2
    line = one_line_error(capsys, "train")
    assert f"declares {size:,} bytes of arrays" in line and "refused before inflating" in line, line


def test_an_npz_nobody_sized_has_a_cap(bomb):
    path, _ = bomb
    with pytest.raises(Refused, match="more than the 1,073,741,824 expected"):
        parse_npz(path.read_bytes(), "x.npz")


def test_header_that_disagrees_with_the_declared_size_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # the header says 784 x 1000 floats, the member holds 100
        zf.writestr("W0.npy", _npy_header("<f4", (784, 1000)) + bytes(400))
    with pytest.raises(Refused) as info:
        parse_npz(buf.getvalue(), "x.npz")
    assert "array W0 declares 528 bytes but its header describes 3,136,128 (float32 (784, 1000))" in str(info.value)


def test_member_that_is_not_an_array_is_refused():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("notes.txt", b"hello")
    with pytest.raises(Refused, match=r"'notes\.txt' is not an \.npy array"):
        parse_npz(buf.getvalue(), "x.npz")
