"""The fused (numba) updaters give the longhand NumPy update's bits, and fall back to it cleanly."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

from dist_mnist.nn import fused
from dist_mnist.nn.updaters import Nesterovs, Sgd

TUTORIAL = {"W0": (784, 1000), "b0": (1000,), "W1": (1000, 10), "b1": (10,)}
ODD = {"W0": (7, 3), "b0": (3,), "W1": (3, 1), "b1": (1,), "W2": (1, 0), "b2": (0,), "W3": (33, 17), "b3": (17,)}
BATCHES = [128, 1, 7, 60000, 96]  # cycled over consecutive steps: a DL4J minibatch, the outer step's 1, odd sizes


def _bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32)  # bit patterns: tells -0.0 from 0.0 and one NaN from another


def _assert_same_bits(got: dict, want: dict, what: str) -> None:
    assert list(got) == list(want)
    for k, w in want.items():
        assert got[k].dtype == np.float32, (what, k)
        np.testing.assert_array_equal(_bits(got[k]), _bits(w), err_msg=f"{what} {k}")


def _problem(shapes: dict, seed: int):
    """Params in a few magnitudes, and a stream of summed gradients spanning 1e-6 to 1e3 in size."""
    rng = np.random.default_rng(seed)
    params = {k: (rng.standard_normal(s, dtype=np.float32) * 0.05) for k, s in shapes.items()}

    def grads():
        return {
            k: rng.standard_normal(s, dtype=np.float32) * np.float32(10 ** rng.uniform(-6, 3))
            for k, s in shapes.items()
        }

    return params, grads


@pytest.fixture
def kernels():
    pytest.importorskip("numba")
    fused.reset()
    k = fused.kernels()
    assert k is not None, "numba is installed, so the fused kernels must load"
    yield k
    fused.reset()


def _copy(d: dict) -> dict:
    return {k: v.copy() for k, v in d.items()}


@pytest.mark.parametrize("l2", [0.0, 1e-4, 0.5])
@pytest.mark.parametrize("shapes", [TUTORIAL, ODD], ids=["tutorial", "odd"])
@pytest.mark.parametrize("updater", [Nesterovs(0.006, 0.9), Sgd(0.1)], ids=["nesterovs", "sgd"])
def test_fused_steps_equal_the_longhand_ones_bit_for_bit(kernels, updater, shapes, l2):
    updater = type(updater)(**{**updater.__dict__, "l2": l2})
    params, next_grads = _problem(shapes, seed=int(l2 * 1e4) + len(shapes))
    fast, slow = _copy(params), _copy(params)
    fast_state, slow_state = updater.init_state(params), updater.init_state(params)
    for step in range(24):
        batch = BATCHES[step % len(BATCHES)]
        grads = next_grads()
        updater.step(fast, _copy(grads), fast_state, batch)
        updater.step(slow, _copy(grads), slow_state, batch, longhand=True)
        _assert_same_bits(fast, slow, f"params after step {step}")
        _assert_same_bits(fast_state, slow_state, f"state after step {step}")
    assert any(not np.array_equal(fast[k], params[k]) for k in params if fast[k].size)  # the steps did move


def test_the_kernels_do_the_documented_float32_sequence_and_leave_the_gradient_alone(kernels):
    """Element by element with NumPy float32 scalars (each operation rounded): updaters.py's docstring."""
    rng = np.random.default_rng(3)
    theta, v, g = (rng.standard_normal(64, dtype=np.float32) * np.float32(s) for s in (1, 1e-2, 1e2))
    f = np.float32
    mu, eta, decay, scale = f(0.9), f(0.006), f(1 - 1e-4 / 96), f(1 / 96)
    want_theta, want_v, want_sgd = theta.copy(), v.copy(), theta.copy()
    for i in range(64):
        u = v[i] * (-mu * mu)
        eg = g[i] * eta
        want_v[i] = v[i] * mu - eg
        u = u + eg * (1 + mu)
        want_theta[i] = theta[i] * decay - u * scale
        want_sgd[i] = theta[i] * decay - (g[i] * eta) * scale
    g0, sgd_theta = g.copy(), theta.copy()
    kernels.nesterov(theta, v, g, mu, eta, -mu * mu, 1 + mu, decay, scale)
    kernels.sgd(sgd_theta, g, eta, decay, scale)
    for got, want in ((theta, want_theta), (v, want_v), (sgd_theta, want_sgd), (g, g0)):
        np.testing.assert_array_equal(_bits(got), _bits(want))


def test_arrays_the_kernel_cannot_take_fall_back_to_numpy_per_array(kernels):
    """Fortran-order weights (ravel would copy) and a float64 array take the NumPy path, same bits."""
    params, next_grads = _problem({"W0": (40, 30), "b0": (30,)}, seed=5)
    params = {"W0": np.asfortranarray(params["W0"]), "b0": params["b0"].astype(np.float64)}
    updater = Nesterovs(0.01, 0.9, 1e-3)
    assert not fused.fusable(params["W0"], params["W0"].copy(order="F"), params["W0"])
    fast, slow = _copy(params), _copy(params)
    fs, ss = {k: np.zeros_like(v) for k, v in params.items()}, {k: np.zeros_like(v) for k, v in params.items()}
    for _ in range(3):
        g = next_grads()
        g = {"W0": np.asfortranarray(g["W0"]), "b0": g["b0"].astype(np.float64)}
        updater.step(fast, _copy(g), fs, 128)
        updater.step(slow, _copy(g), ss, 128, longhand=True)
    for k in params:
        np.testing.assert_array_equal(fast[k], slow[k], err_msg=k)
        assert fast[k].dtype == params[k].dtype


def _log_of_steps_without_kernels(caplog) -> list[str]:
    """Three steps where the kernels cannot load: the NumPy path's bits; what fused logged."""
    params, next_grads = _problem(ODD, seed=9)
    updater = Nesterovs(0.006, 0.9, 1e-4)
    got, want = _copy(params), _copy(params)
    gs, ws = updater.init_state(params), updater.init_state(params)
    fused.reset()
    try:
        with caplog.at_level(logging.INFO, logger=fused.__name__):
            for _ in range(3):
                g = next_grads()
                updater.step(got, _copy(g), gs, 128)
                updater.step(want, _copy(g), ws, 128, longhand=True)
        assert fused.kernels() is None
    finally:
        fused.reset()
    _assert_same_bits(got, want, "params")
    _assert_same_bits(gs, ws, "state")
    return [r.getMessage() for r in caplog.records if r.name == fused.__name__]


def test_without_numba_the_numpy_path_runs_with_one_log_line(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    lines = _log_of_steps_without_kernels(caplog)
    assert len(lines) == 1 and "numba is not importable" in lines[0] and "NumPy path" in lines[0], lines


def test_dist_mnist_fused_0_chooses_the_numpy_path_silently(monkeypatch, caplog):
    monkeypatch.setenv(fused.ENV, "0")
    assert _log_of_steps_without_kernels(caplog) == []


def test_no_place_for_numbas_cache_compiles_uncached(kernels, monkeypatch):
    """numba raises at decoration when no cache locator applies (read-only install, no writable home)."""
    from numba.core import caching

    monkeypatch.setattr(caching.CacheImpl, "_locator_classes", [])
    with pytest.raises(RuntimeError, match="no locator"):
        fused._compile(sys.modules["numba"], cache=True)
    fused.reset()
    assert fused.kernels() is not None


def test_from_a_zip_without_a_writable_cache_dir(tmp_path):
    """--py-files: numba caches a zipped module in the user's cache dir, and fails at the first save
    where it cannot write there; the kernels are then compiled uncached and give the NumPy bits."""
    pytest.importorskip("numba")
    from dist_mnist.spark.packaging import build_zip

    zipped = build_zip(tmp_path / "dist_mnist.zip")
    code = (
        "import numpy as np, dist_mnist\n"
        "from dist_mnist.nn import fused\n"
        "from dist_mnist.nn.updaters import Nesterovs\n"
        f"assert dist_mnist.__file__.startswith({str(zipped)!r}), dist_mnist.__file__\n"
        "assert fused.kernels() is not None\n"
        "rng = np.random.default_rng(0)\n"
        "p = {'W0': rng.standard_normal((50, 20), dtype=np.float32), 'b0': np.ones(20, np.float32)}\n"
        "g = {k: rng.standard_normal(v.shape, dtype=np.float32) for k, v in p.items()}\n"
        "a, b = {k: v.copy() for k, v in p.items()}, {k: v.copy() for k, v in p.items()}\n"
        "u = Nesterovs(0.006, 0.9, 1e-4)\n"
        "u.step(a, {k: v.copy() for k, v in g.items()}, u.init_state(p), 128)\n"
        "u.step(b, {k: v.copy() for k, v in g.items()}, u.init_state(p), 128, longhand=True)\n"
        "assert all(np.array_equal(a[k].view(np.uint32), b[k].view(np.uint32)) for k in p)\n"
        "print('ok')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_", "DIST_MNIST_"))}
    env.update(PYTHONPATH=str(zipped), XDG_CACHE_HOME="/proc/dist-mnist-no-cache", HOME="/proc/dist-mnist-no-home")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, check=False, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def _plan(mode: str):
    from dist_mnist.config import load_config
    from dist_mnist.data.shards import Shard
    from dist_mnist.nn.flat import layout_of
    from dist_mnist.rounds import Plan

    params, _ = _problem(ODD, seed=11)
    config = load_config(None, [f"mode='{mode}'", "workers=1"])
    shard = Shard(0, 128, ())
    return Plan(config, (shard,), (shard,), layout_of(params)), params


@pytest.mark.parametrize("mode", ["sync", "average"])
def test_the_drivers_step_is_fused_in_sync_mode_and_longhand_for_the_outer_step(kernels, monkeypatch, mode):
    """Sync mode: the driver steps every minibatch (fused pays). Average mode's outer step runs once
    a round, too rarely to pay numba's start-up, so it never asks for the kernels; same bits."""
    from dist_mnist.modes import TrainingArrays
    from dist_mnist.nn.flat import unpack
    from dist_mnist.rounds import RoundResult, apply_round

    plan, params = _plan(mode)
    updater = Nesterovs(0.006, 0.9, 1e-4)
    outer = Nesterovs(1.0, 0.7) if mode == "average" else None
    calls = []
    monkeypatch.setattr(fused, "kernels", lambda: calls.append(1) or kernels)
    state, outer_v = updater.init_state(params), updater.init_state(params)
    rng = np.random.default_rng(4)
    n_sums = plan.n_params * (2 if plan.ships_state else 1)
    sums = rng.standard_normal(n_sums, dtype=np.float32)
    got = _copy(params)
    arrays = TrainingArrays(got, _copy(state), _copy(outer_v), updater, outer)
    apply_round(plan, arrays, RoundResult(sums.copy(), 1.0, 100))
    assert len(calls) == (1 if mode == "sync" else 0)
    if mode == "sync":  # the same bits as the NumPy path
        want = _copy(params)
        updater.step(want, unpack(sums.copy(), plan.layout), _copy(state), 100, longhand=True)
        _assert_same_bits(got, want, "params")
