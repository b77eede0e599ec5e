"""kill -9 in the middle of a checkpoint write leaves the previous checkpoint whole.

The child writes a good checkpoint, then starts a second one whose write of the temporary
file stops part-way (a hook in the child's os.fdopen) and tells the parent so. The parent
checks that the kill lands there: the temporary file is on disk, partly written, and the
rename has not happened.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from dist_mnist.driver.checkpoint import CHECKPOINT_NPZ, read_arrays

# Arrays and meta of checkpoint i all carry the counter i.
WRITER = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from dist_mnist.driver.checkpoint import write_arrays

    run, fraction = sys.argv[1], float(sys.argv[2])

    def checkpoint(i):
        params = {"W0": np.full((784, 300), i, np.float32), "b0": np.full(300, i, np.float32)}
        write_arrays(run, params, {k: v * 2 for k, v in params.items()}, {}, {"global_round": i})

    checkpoint(1)
    print("saved", flush=True)

    real_fdopen = os.fdopen

    class Stalled:
        # the temporary file's object: writes `fraction` of the bytes, reports, then hangs
        def __init__(self, f):
            self.f = f
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.f.close()
        def write(self, data):
            cut = int(len(data) * fraction)
            self.f.write(data[:cut])
            self.f.flush()
            print("writing", cut, len(data), flush=True)
            time.sleep(600)

    os.fdopen = lambda fd, mode: Stalled(real_fdopen(fd, mode))
    checkpoint(2)
    print("finished", flush=True)
""")


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.999])
def test_sigkill_inside_the_temporary_file_write_keeps_the_previous_checkpoint(tmp_path, fraction):
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), str(fraction)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline() == "saved\n"
        good = _digest(tmp_path / CHECKPOINT_NPZ)
        report = proc.stdout.readline().split()
        assert report and report[0] == "writing", report  # the child is inside the write
        cut, size = int(report[1]), int(report[2])
        temporary = list(tmp_path.glob(f".{CHECKPOINT_NPZ}.*.tmp"))
        assert len(temporary) == 1 and temporary[0].stat().st_size == cut < size
        assert _digest(tmp_path / CHECKPOINT_NPZ) == good  # the rename has not happened
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert temporary[0].exists()  # killed mid-write: the half-written file stays behind, unused
    assert _digest(tmp_path / CHECKPOINT_NPZ) == good
    params, state, _, meta = read_arrays(tmp_path)
    assert meta["global_round"] == 1
    assert (params["W0"] == 1).all() and (params["b0"] == 1).all() and (state["W0"] == 2).all()
