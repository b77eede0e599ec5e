"""benchmarks/profile_shares.py: py-spy's raw stacks split into GEMM, update, batching, transport, Spark start."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import profile_shares

DRIVER = 'process 10:"python .venv/bin/dist-mnist train --data d --out r"'
WORKER = 'process 20:"python -m pyspark.daemon"'
STEP = "local_steps (dist_mnist/nn/steps.py:40)"
RAW = [
    f"{DRIVER};main (dist_mnist/cli.py:281);getOrCreate (pyspark/sql/session.py:500);"
    "launch_gateway (pyspark/java_gateway.py:90) 30",
    f"{DRIVER};_train (dist_mnist/spark/trainer.py:250);apply_round (dist_mnist/rounds.py:202);"
    "Nesterovs.step (dist_mnist/nn/updaters.py:94) 10",
    f"{DRIVER};run_round (dist_mnist/spark/barrier.py:180);recv (zmq/sugar/socket.py:700) 60",
    f"{WORKER};{STEP};loss_and_grads (dist_mnist/nn/model.py:100);sgemm_kernel_HASWELL (libscipy_openblas.so) 50",
    f"{WORKER};{STEP};loss_and_grads (dist_mnist/nn/model.py:104);maximum (numpy/_core/umath.so) 10",
    f"{WORKER};{STEP};Nesterovs.step (dist_mnist/nn/updaters.py:90);_compile (numba/core/compiler.py:10) 15",
    f"{WORKER};{STEP};Nesterovs.step (dist_mnist/nn/updaters.py:90);"
    "_find_and_load (<frozen importlib._bootstrap>:1176) 5",
    f"{WORKER};{STEP};Batcher.__call__ (dist_mnist/nn/steps.py:23);to_inputs (dist_mnist/nn/model.py:41) 10",
    f"{WORKER};serve (dist_mnist/channel.py:10);pack (dist_mnist/nn/flat.py:17);_contig_to_contig (numpy.so) 10",
    "not a stack line",
]


def test_each_stack_goes_to_its_innermost_category_per_side():
    got = profile_shares.shares(RAW)
    assert got["driver"]["samples"] == 100 and got["executors"]["samples"] == 100
    assert got["driver"]["Spark start"] == pytest.approx(0.3)
    assert got["driver"]["update"] == pytest.approx(0.1)
    assert got["driver"]["transport"] == pytest.approx(0.6)
    w = got["executors"]
    assert w["GEMM"] == pytest.approx(0.5)
    assert w["gradients, other than GEMM"] == pytest.approx(0.1)
    assert w["update"] == pytest.approx(0.15)  # numba's compile inside the step; its import is an import
    assert w["imports"] == pytest.approx(0.05)
    assert w["batching"] == pytest.approx(0.1)
    assert w["transport"] == pytest.approx(0.1)  # the copy inside pack
    assert sum(v for k, v in w.items() if k != "samples") == pytest.approx(1.0)
