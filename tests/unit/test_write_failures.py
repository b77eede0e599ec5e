"""A full disk, a quota or too many open files while a run writes: one line naming the file,
no temporary file left, the last good checkpoint kept, and --resume ends with the model an
uninterrupted run makes, bit for bit. The failure is injected into the system calls of the
atomic writer (mkstemp, fsync) for the n-th write of a given file."""

from __future__ import annotations

import errno
import os
import tempfile

import numpy as np
import pytest

from dist_mnist.driver.checkpoint import read_arrays
from dist_mnist.files.atomic import WriteFailed, atomic_write_bytes
from dist_mnist.files.model import load_model

from ..support.cli import one_line_error
from ..support.tiny_runs import tiny_data, train_cli


def _fail(monkeypatch, call: str, name: str, nth: int, code: int) -> None:
    """Make `call` ("fsync" or "mkstemp") raise OSError(code) on the nth write of a file called `name`."""
    seen = []

    def hit(temporary: str) -> bool:
        if os.path.basename(temporary).startswith(f".{name}."):
            seen.append(temporary)
            return len(seen) == nth
        return False

    if call == "fsync":
        real = os.fsync

        def fsync(fd):
            if hit(os.readlink(f"/proc/self/fd/{fd}")):
                raise OSError(code, os.strerror(code))
            return real(fd)

        monkeypatch.setattr(os, "fsync", fsync)
    else:
        real_mkstemp = tempfile.mkstemp

        def mkstemp(dir=None, prefix=None, suffix=None):
            if hit(os.path.join(dir, prefix)):
                raise OSError(code, os.strerror(code))
            return real_mkstemp(dir=dir, prefix=prefix, suffix=suffix)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize(
    "call, name, nth, code, last_round",
    [
        ("fsync", "checkpoint.npz", 2, errno.ENOSPC, 3),  # the round-6 checkpoint: round 3's is kept
        ("mkstemp", "checkpoint.npz", 2, errno.EMFILE, 3),
        ("fsync", "checkpoint.npz", 4, errno.EDQUOT, 8),  # round 9's, after the epoch-end checkpoint
        ("fsync", "model.npz", 1, errno.ENOSPC, 16),  # the outputs, after the last checkpoint
    ],
    ids=["ENOSPC-checkpoint", "EMFILE-checkpoint", "EDQUOT-checkpoint", "ENOSPC-model"],
)
def test_write_failure_keeps_the_checkpoint_and_resume_finishes_the_run(
    tmp_path, capsys, monkeypatch, no_spark, call, name, nth, code, last_round
):
    data = tiny_data(tmp_path / "DATA")
    assert train_cli(data, tmp_path / "straight") == 0

    run, staging = tmp_path / "RUN", tmp_path / "RUN.partial"
    _fail(monkeypatch, call, name, nth, code)
    assert train_cli(data, run) == 1  # a failure of the machine, not of the input
    line = one_line_error(capsys, "train")
    what = f"{os.strerror(code)} ({errno.errorcode[code]})"
    assert f"{staging / name}: not written: {what}" in line, line
    assert f"the last good checkpoint is kept in {staging}" in line and "--resume" in line, line
    monkeypatch.undo()
    assert not run.exists()
    assert not [p.name for p in staging.iterdir() if p.name.endswith(".tmp")]  # no temporary file left
    assert read_arrays(staging)[3]["global_round"] == last_round

    assert train_cli(data, run, "--resume") == 0
    resumed, straight = load_model(run)[0], load_model(tmp_path / "straight")[0]
    for k in straight:
        np.testing.assert_array_equal(resumed[k], straight[k], err_msg=k)


def test_write_failed_is_an_oserror_and_a_runtimeerror_naming_the_file(tmp_path, monkeypatch):
    target = tmp_path / "model.npz"
    target.write_bytes(b"the good one")
    _fail(monkeypatch, "fsync", "model.npz", 1, errno.ENOSPC)
    with pytest.raises(WriteFailed) as info:
        atomic_write_bytes(target, b"new")
    e = info.value
    assert isinstance(e, OSError) and isinstance(e, RuntimeError) and e.errno == errno.ENOSPC
    assert (
        str(e) == f"{target}: not written: No space left on device (ENOSPC); nothing was replaced "
        "(help: free disk space)"
    )
    assert target.read_bytes() == b"the good one" and os.listdir(tmp_path) == ["model.npz"]


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(FileNotFoundError):  # a missing directory is the caller's mistake, not the machine's
        atomic_write_bytes(tmp_path / "nope" / "x", b"")
