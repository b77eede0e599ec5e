"""DL4J updaters checked against the issue's formulas, computed by hand in float64."""

import numpy as np
import pytest

from dist_mnist.nn.updaters import Nesterovs, Sgd, make_updater, zeros_like

ETA, MU, LAM, B = 0.05, 0.9, 0.01, 4


SHAPES = {"W0": (3, 2), "b0": (2,), "W1": (2, 2), "b1": (2,)}


def _problem(seed: int = 0, signed: bool = False):
    """float32 params and three summed gradients.

    Unsigned: params in [1, 2) and gradients > 0, so no step cancels and a relative
    tolerance of 1e-6 is meaningful for float32 results. Signed: random signs.
    """
    rng = np.random.default_rng(seed)
    if signed:
        params = {k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
        grads = [{k: (B * rng.standard_normal(s)).astype(np.float32) for k, s in SHAPES.items()} for _ in range(3)]
    else:
        params = {k: (1 + rng.random(s)).astype(np.float32) for k, s in SHAPES.items()}
        grads = [{k: (B * (0.5 + rng.random(s))).astype(np.float32) for k, s in SHAPES.items()} for _ in range(3)]
    return params, grads


def _copy(d):
    return {k: v.copy() for k, v in d.items()}


@pytest.mark.parametrize("signed", [False, True], ids=["no-cancellation", "signed"])
def test_nesterovs_three_steps_match_the_formula(signed):
    params, grads = _problem(signed=signed)
    # with random signs a step can cancel to ~0, so compare absolutely at float32 precision
    tol = {"rtol": 0, "atol": 1e-6} if signed else {"rtol": 1e-6}
    updater = Nesterovs(ETA, MU, LAM)
    state = updater.init_state(params)
    theta = {k: v.astype(np.float64) for k, v in params.items()}
    v = {k: np.zeros_like(t) for k, t in theta.items()}
    for G in grads:
        updater.step(params, _copy(G), state, B)
        for k in theta:
            v_prev = v[k]
            v[k] = MU * v_prev - ETA * G[k]  # v_t = mu*v - eta*G
            u = MU * v_prev - (1 + MU) * v[k]
            if k.startswith("W"):
                u = u + LAM * theta[k]
            u = u / B
            theta[k] = theta[k] - u
        for k in theta:
            assert params[k].dtype == np.float32 and state[k].dtype == np.float32
            np.testing.assert_allclose(params[k], theta[k], **tol, err_msg=k)
            np.testing.assert_allclose(state[k], v[k], **tol, err_msg=k)


@pytest.mark.parametrize(
    "updater_of", [lambda l2: Nesterovs(ETA, MU, l2), lambda l2: Sgd(ETA, l2)], ids=["nesterovs", "sgd"]
)
def test_l2_applies_to_weights_only(updater_of):
    params, grads = _problem(1)
    with_l2, without = _copy(params), _copy(params)
    u_l2, u_0 = updater_of(0.5), updater_of(0.0)
    s_l2, s_0 = u_l2.init_state(params), u_0.init_state(params)
    for G in grads:
        u_l2.step(with_l2, _copy(G), s_l2, B)
        u_0.step(without, _copy(G), s_0, B)
    for k in params:
        if k.startswith("b"):
            np.testing.assert_array_equal(with_l2[k], without[k], err_msg=k)
        else:
            assert not np.allclose(with_l2[k], without[k]), k


def test_sgd_step_by_hand():
    params, grads = _problem(2)
    updater = Sgd(ETA, LAM)
    state = updater.init_state(params)
    assert state == {}
    theta = {k: v.astype(np.float64) for k, v in params.items()}
    for G in grads:
        updater.step(params, _copy(G), state, B)
        for k in theta:
            l2 = LAM * theta[k] if k.startswith("W") else 0.0
            theta[k] = theta[k] - (ETA * G[k] + l2) / B  # theta -= (eta*G + lam*theta) / B
        for k in theta:
            np.testing.assert_allclose(params[k], theta[k], rtol=1e-6, err_msg=k)


def test_zeros_like_keeps_keys_shapes_dtypes():
    params, _ = _problem()
    z = zeros_like(params)
    assert list(z) == list(params)
    for k in params:
        assert z[k].shape == params[k].shape and z[k].dtype == params[k].dtype and not z[k].any()


def test_make_updater():
    n = make_updater("nesterovs", 0.006, 0.9, 1e-4)
    assert n == Nesterovs(0.006, 0.9, 1e-4)
    assert make_updater("sgd", 0.1, 0.9, 1e-4) == Sgd(0.1, 1e-4)
    with pytest.raises(ValueError, match="'adam'"):
        make_updater("adam", 0.1, 0.9, 0.0)
    with pytest.raises(ValueError, match="updater must be"):
        make_updater("Nesterovs", 0.1, 0.9, 0.0)
