"""kill -9 at random moments of a checkpoint write never leaves a broken or mixed checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np

from dist_mnist.artifacts import load_checkpoint

# Writes checkpoints whose arrays and meta all carry the same counter, as fast as it can.
WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from dist_mnist.artifacts import save_checkpoint
    run, i = sys.argv[1], 0
    while True:
        i += 1
        params = {"W0": np.full((784, 300), i, np.float32), "b0": np.full(300, i, np.float32)}
        save_checkpoint(run, params, {k: v * 2 for k, v in params.items()}, {"global_round": i})
        print(i, flush=True)
""")


def test_sigkill_while_writing_checkpoints_leaves_a_whole_one(tmp_path):
    rng = np.random.default_rng(0)
    last_seen = 0
    for _ in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        proc.stdout.readline()  # at least one checkpoint exists
        time.sleep(rng.uniform(0.0, 0.3))  # then kill it somewhere inside a later write
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        params, state, meta = load_checkpoint(tmp_path)
        i = meta["global_round"]
        assert (params["W0"] == i).all() and (params["b0"] == i).all()
        assert (state["W0"] == 2 * i).all()
        assert i >= 1
        last_seen = max(last_seen, i)
    assert last_seen > 1  # the kills landed after several writes, not only before the first
