"""Refactors must not change the math: the tutorial config's models, bit for bit, as recorded.

The digests were recorded when layer 0 began to be computed from each example's non-zero
inputs (dist_mnist/nn/sparse.py: the same math as the dense GEMM up to the order of its
additions, so other bits; the same test accuracies, 0.9172 and 0.8471), with the in-process
transport (one BLAS thread, the same round functions as the Spark transports,
bit-identical to them by test) on the real MNIST ingested with 2 parts and seed 123. A
change that moves a bit of either model fails here; a deliberate change of the arithmetic
must say so and record new digests.

The run is a subprocess with OpenBLAS's kernels fixed to its Haswell ones (AVX2, which the
recording used): numpy's OpenBLAS picks its GEMM kernels by CPU, and an AVX-512 machine's
sum products in another order, so the same code gives other bits there. What is pinned here
is our arithmetic, not OpenBLAS's choice of kernel.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dist_mnist.files.model import load_model

from ..support import REPO

pytestmark = pytest.mark.mnist

GOLDEN = {
    # 2 epochs of the default average mode on 2 workers: test accuracy 0.9172
    "average": (["epochs=2", "workers=2"], "05b7b83cb3bf59f26494131da1af3aa78fdd89d9ed40f5a2028506349b81287e"),
    # the first 60 rounds of sync mode on 2 workers: test accuracy 0.8471
    "sync": (
        ["epochs=1", "max_rounds=60", "workers=2", "mode='sync'"],
        "f2fa70511c343bbb4cd8dd8d43018d35c0dffce54db6347a11fc4ead47d03d00",
    ),
}


def digest(params: dict) -> str:
    """sha256 over the arrays' names and float32 bytes, in name order."""
    h = hashlib.sha256()
    for key in sorted(params):
        h.update(key.encode())
        h.update(params[key].tobytes())
    return h.hexdigest()


RUN = """
import sys
from dist_mnist.config import load_config
from dist_mnist.driver import train
config = load_config(sys.argv[1], sys.argv[4:])
train(None, config, sys.argv[2], sys.argv[3], log=lambda *_: None)
"""


def has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not has_avx2(), reason="the recorded digests are OpenBLAS's Haswell (AVX2) kernels' bits")
@pytest.mark.parametrize("mode", sorted(GOLDEN))
def test_the_tutorial_model_is_bit_identical_to_the_recorded_one(mode, mnist_parquet, tmp_path):
    sets, expected = GOLDEN[mode]
    run = tmp_path / "run"
    argv = [
        sys.executable,
        "-c",
        RUN,
        str(REPO / "conf" / "tutorial.toml"),
        str(mnist_parquet),
        str(run),
        *sets,
        "transport='inprocess'",
    ]
    env = {**os.environ, "OPENBLAS_CORETYPE": "Haswell"}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    params, _ = load_model(run)
    assert digest(params) == expected
