"""DL4J 0.x updaters with L2, applied to keyed parameter dicts in place.

Notation of the issue: G is the summed gradient over a minibatch of B examples,
eta the learning rate, mu the momentum, lam the L2 coefficient, v the state.

Per element, in float32, each operation rounded (the order of roundings is part of the result):

    Nesterovs: u = v * f32(-mu*mu); g = G * eta; v = v * mu; v = v - g; g = g * f32(1+mu); u = u + g
    Sgd:       u = G * eta
    then:      theta = theta * f32(1 - lam/B)   (weights only, when lam > 0)
               u = u * f32(1/B); theta = theta - u

`nesterov_longhand` and `sgd_longhand` do exactly this with NumPy, one pass per operation: they
are the oracle and the fallback. `step` runs the same sequence fused into one pass per array
(dist_mnist/nn/fused.py, numba) where numba is installed, with the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dist_mnist.nn import fused
from dist_mnist.nn.model import Params

_ONE = np.float32(1)


def zeros_like(params: Params) -> Params:
    """An updater state of zeros with the same keys, shapes and dtypes."""
    return {k: np.zeros_like(v) for k, v in params.items()}


def _decay(key: str, l2: float, batch: int) -> np.float32 | None:
    """DL4J's L2 as a factor on theta: f32(1 - lam/B) on weights, None (no multiply) elsewhere.

    DL4J adds lam*theta after the updater (not scaled by eta, not fed to momentum), then divides
    the whole update by the minibatch size: theta -= (u + lam*theta) / B.
    """
    return np.float32(1.0 - l2 / batch) if l2 and key.startswith("W") else None


def _apply(theta: np.ndarray, u: np.ndarray, decay: np.float32 | None, scale: np.float32) -> None:
    """theta = theta * decay - u * scale, in place, one NumPy pass per operation (u is scratch)."""
    if decay is not None:
        theta *= decay
    u *= scale
    theta -= u


def nesterov_longhand(
    theta: np.ndarray, v: np.ndarray, g: np.ndarray, mu: np.float32, eta: np.float32, decay, scale: np.float32
) -> None:
    """One array's Nesterov step with NumPy, in place (g is scratch); the oracle of the fused kernel."""
    u = np.multiply(v, -mu * mu)  # u = mu*v_{t-1} - (1+mu)*v_t = -mu^2 v_{t-1} + (1+mu) eta G
    g *= eta
    v *= mu
    v -= g  # v_t = mu*v_{t-1} - eta*G
    g *= 1 + mu
    u += g
    _apply(theta, u, decay, scale)


def sgd_longhand(theta: np.ndarray, g: np.ndarray, eta: np.float32, decay, scale: np.float32) -> None:
    """One array's SGD step with NumPy, in place (g is scratch); the oracle of the fused kernel."""
    g *= eta
    _apply(theta, g, decay, scale)


@dataclass(frozen=True)
class Nesterovs:
    """Updater.NESTEROVS with .regularization(true).l2(l2), as in DL4J 0.x."""

    learning_rate: float
    momentum: float = 0.9
    l2: float = 0.0

    def init_state(self, params: Params) -> Params:
        """Velocity v, initially zero."""
        return zeros_like(params)

    def step(self, params: Params, grads: Params, state: Params, batch: int, longhand: bool = False) -> None:
        """One update from summed grads over `batch` examples, in place on params and state.

        grads may be used as scratch. Fused into one pass per array where numba is installed,
        else (or with longhand=True) NumPy's passes; the same bits either way.
        """
        mu, eta, scale = np.float32(self.momentum), np.float32(self.learning_rate), np.float32(1.0 / batch)
        c1, c2 = np.float32(-mu * mu), np.float32(1 + mu)  # the longhand's constants, float32 under any promotion
        kernels = None if longhand else fused.kernels()
        for k, theta in params.items():
            v, g, decay = state[k], grads[k], _decay(k, self.l2, batch)
            if kernels is not None and fused.fusable(theta, v, g):
                flat = (a.reshape(-1) for a in (theta, v, g))  # views: fusable() checked C order
                kernels.nesterov(*flat, mu, eta, c1, c2, _ONE if decay is None else decay, scale)
            else:
                nesterov_longhand(theta, v, g, mu, eta, decay, scale)


@dataclass(frozen=True)
class Sgd:
    """Plain SGD with DL4J's L2: theta -= (eta*G + lam*theta) / B."""

    learning_rate: float
    l2: float = 0.0

    def init_state(self, params: Params) -> Params:
        """SGD keeps no state."""
        return {}

    def step(self, params: Params, grads: Params, state: Params, batch: int, longhand: bool = False) -> None:
        """One update from summed grads over `batch` examples, in place on params (grads: scratch).

        Fused where numba is installed, else (or with longhand=True) NumPy's passes; the same bits.
        """
        eta, scale = np.float32(self.learning_rate), np.float32(1.0 / batch)
        kernels = None if longhand else fused.kernels()
        for k, theta in params.items():
            g, decay = grads[k], _decay(k, self.l2, batch)
            if kernels is not None and fused.fusable(theta, g):
                kernels.sgd(theta.reshape(-1), g.reshape(-1), eta, _ONE if decay is None else decay, scale)  # views
            else:
                sgd_longhand(theta, g, eta, decay, scale)


def make_updater(name: str, learning_rate: float, momentum: float, l2: float) -> Nesterovs | Sgd:
    """The updater named in a config: 'nesterovs' or 'sgd'."""
    if name == "nesterovs":
        return Nesterovs(learning_rate, momentum, l2)
    if name == "sgd":
        return Sgd(learning_rate, l2)
    raise ValueError(f"updater must be 'nesterovs' or 'sgd', got {name!r}")
