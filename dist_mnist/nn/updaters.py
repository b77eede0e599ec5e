"""DL4J 0.x updaters with L2, applied to keyed parameter dicts in place.

Notation of the issue: G is the summed gradient over a minibatch of B examples,
eta the learning rate, mu the momentum, lam the L2 coefficient, v the state.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dist_mnist.nn.model import Params


def zeros_like(params: Params) -> Params:
    """An updater state of zeros with the same keys, shapes and dtypes."""
    return {k: np.zeros_like(v) for k, v in params.items()}


def _apply(theta: np.ndarray, u: np.ndarray, key: str, l2: float, batch: int) -> None:
    """theta -= (u + lam*theta) / B, with the L2 term on weights only.

    DL4J adds lam*theta after the updater (not scaled by eta, not fed to momentum),
    then divides the whole update by the minibatch size.
    """
    if l2 and key.startswith("W"):
        theta *= np.float32(1.0 - l2 / batch)
    u *= np.float32(1.0 / batch)
    theta -= u


@dataclass(frozen=True)
class Nesterovs:
    """Updater.NESTEROVS with .regularization(true).l2(l2), as in DL4J 0.x."""

    learning_rate: float
    momentum: float = 0.9
    l2: float = 0.0

    def init_state(self, params: Params) -> Params:
        """Velocity v, initially zero."""
        return zeros_like(params)

    def step(self, params: Params, grads: Params, state: Params, batch: int) -> None:
        """One update from summed grads over `batch` examples.

        Mutates params, state and grads (used as scratch): no temporaries on the hot path.
        """
        mu, eta = np.float32(self.momentum), np.float32(self.learning_rate)
        for k, theta in params.items():
            v, g = state[k], grads[k]
            u = np.multiply(v, -mu * mu)  # u = mu*v_{t-1} - (1+mu)*v_t = -mu^2 v_{t-1} + (1+mu) eta G
            g *= eta
            v *= mu
            v -= g  # v_t = mu*v_{t-1} - eta*G
            g *= 1 + mu
            u += g
            _apply(theta, u, k, self.l2, batch)


@dataclass(frozen=True)
class Sgd:
    """Plain SGD with DL4J's L2: theta -= (eta*G + lam*theta) / B."""

    learning_rate: float
    l2: float = 0.0

    def init_state(self, params: Params) -> Params:
        """SGD keeps no state."""
        return {}

    def step(self, params: Params, grads: Params, state: Params, batch: int) -> None:
        """One update from summed grads over `batch` examples; mutates params and grads."""
        for k, theta in params.items():
            g = grads[k]
            g *= np.float32(self.learning_rate)
            _apply(theta, g, k, self.l2, batch)


def make_updater(name: str, learning_rate: float, momentum: float, l2: float) -> Nesterovs | Sgd:
    """The updater named in a config: 'nesterovs' or 'sgd'."""
    if name == "nesterovs":
        return Nesterovs(learning_rate, momentum, l2)
    if name == "sgd":
        return Sgd(learning_rate, l2)
    raise ValueError(f"updater must be 'nesterovs' or 'sgd', got {name!r}")
