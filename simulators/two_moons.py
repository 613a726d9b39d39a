"""The two-moons task of sbibm (Lueckmann et al. 2021), with its likelihood and exact posterior.

Prior ``theta ~ U(-1, 1)^2``. Noise ``a ~ U(-pi/2, pi/2)``, ``r ~ N(0.1, 0.01^2)`` gives a
point on a half ring, ``p = (r cos a + 0.25, r sin a)``, and

    x = p + (-|z_0|, z_1),  z = R theta = ((theta_1 + theta_2) / sqrt 2,
                                           (-theta_1 + theta_2) / sqrt 2).

**Likelihood.** ``(r, a) -> q = p - (0.25, 0)`` is one-to-one from ``(r != 0) x (-pi/2, pi/2)``
onto ``q_0 != 0`` with Jacobian ``|r|``, so ``p(x | theta) = N(r; 0.1, 0.01^2) / (pi |r|)`` with
``q = x - (0.25, 0) + (|z_0|, -z_1)`` and ``r = sign(q_0) |q|``. (sbibm's ``_likelihood`` leaves
out the ``1 / (pi |r|)`` factor, which changes by a factor 1.5 across the ring's +-2 sd width.)

**Exact posterior.** For fixed ``x`` the map ``theta -> (p, sign z_0)`` is one-to-one with unit
Jacobian (a rotation, then a reflection of ``z_0``), and the prior is flat on its box. So drawing
the noise ``p`` from the simulator, setting ``|z_0| = p_0 - x_0`` (dropping draws where that is
negative: no ``theta`` makes them), ``z_1 = x_1 - p_1``, a fair random sign for ``z_0``, rotating
back and keeping the draws inside the prior box gives exact posterior draws. (sbibm's sampler
also keeps the draws with ``p_0 < x_0``, which are not posterior draws.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from simulators.base import ExactPosterior, Likelihood, Simulator, likelihood_pairs
from simulators.errors import EmustudyError
from simulators.prior import Parameter, Prior

__all__ = ["TwoMoons", "PosteriorSamplingError"]

_R_LOC, _R_SCALE, _OFFSET = 0.1, 0.01, 0.25
# Most noise proposals one posterior call may draw before it gives up.
_MAX_PROPOSALS = 10_000_000


class PosteriorSamplingError(EmustudyError):
    """An exact posterior sampler could not produce the requested draws."""


def _rotate(theta: np.ndarray) -> np.ndarray:
    """``z = R theta``, ``(n, 2) -> (n, 2)``."""
    return np.stack([theta[:, 0] + theta[:, 1], -theta[:, 0] + theta[:, 1]], axis=-1) / math.sqrt(2)


def _rotate_back(z: np.ndarray) -> np.ndarray:
    """``theta = R^T z``, the inverse of :func:`_rotate`."""
    return np.stack([z[:, 0] - z[:, 1], z[:, 0] + z[:, 1]], axis=-1) / math.sqrt(2)


def _half_ring(a: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Noise points ``p`` ``(n, 2)`` from angles and radii ``(n,)``."""
    return np.stack([r * np.cos(a) + _OFFSET, r * np.sin(a)], axis=-1)


def _swap_negate(theta: np.ndarray) -> np.ndarray:
    """The map between the two moons, ``(n, 2) -> (n, 2)``."""
    return -np.asarray(theta)[:, ::-1]


class TwoMoons(Simulator, ExactPosterior, Likelihood):
    """sbibm's two moons: 2 parameters, 2 outputs, a crescent-shaped bimodal posterior."""

    name = "two_moons"

    def __init__(self) -> None:
        self.prior = Prior(
            parameters=tuple(
                Parameter(name=f"theta_{i}", distribution="uniform", low=-1.0, high=1.0)
                for i in range(2)
            )
        )
        self.output_names = ("x_0", "x_1")

    @property
    def settings(self) -> dict[str, Any]:
        return {}

    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        noise = np.empty((len(seeds), 2))
        for i, seed in enumerate(seeds):
            rng = np.random.default_rng(int(seed))
            noise[i] = rng.uniform(-math.pi / 2, math.pi / 2), rng.normal(_R_LOC, _R_SCALE)
        z = _rotate(np.asarray(theta, dtype=np.float64))
        return _half_ring(noise[:, 0], noise[:, 1]) + np.stack([-np.abs(z[:, 0]), z[:, 1]], -1)

    def log_likelihood(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        theta, x = likelihood_pairs(theta, x, 2, 2)
        z = _rotate(theta)
        q0 = x[:, 0] + np.abs(z[:, 0]) - _OFFSET
        q1 = x[:, 1] - z[:, 1]
        r = np.where(q0 >= 0, 1.0, -1.0) * np.hypot(q0, q1)
        with np.errstate(divide="ignore"):
            log_r = np.log(np.abs(r))
        normal = -0.5 * ((r - _R_LOC) / _R_SCALE) ** 2 - math.log(_R_SCALE * math.sqrt(2 * math.pi))
        return np.where(q0 == 0, -np.inf, normal - math.log(math.pi) - log_r)

    def posterior_symmetries(self) -> tuple[Callable[[np.ndarray], np.ndarray], ...]:
        """``(theta_1, theta_2) -> (-theta_2, -theta_1)`` flips ``z_0`` and keeps ``z_1``."""
        return (_swap_negate,)

    def sample_posterior(self, x_o: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """Exact draws from ``p(theta | x_o)`` (see the module docstring).

        Raises
        ------
        PosteriorSamplingError
            If fewer than ``n`` draws were accepted after 10 million noise proposals (an
            ``x_o`` that the prior can hardly produce).
        """
        x_o = np.asarray(x_o, dtype=np.float64).reshape(2)
        kept: list[np.ndarray] = []
        found = proposed = 0
        batch = max(1024, 4 * n)
        while found < n:
            if proposed >= _MAX_PROPOSALS:
                raise PosteriorSamplingError(
                    f"two_moons: only {found} of {n} posterior draws at x_o={x_o.tolist()} after "
                    f"{proposed} proposals; this x_o is (nearly) impossible under the prior. "
                    "Use observations simulated from parameters inside the prior box"
                )
            p = _half_ring(
                rng.uniform(-math.pi / 2, math.pi / 2, batch), rng.normal(_R_LOC, _R_SCALE, batch)
            )
            sign = np.where(rng.random(batch) < 0.5, -1.0, 1.0)
            z = np.stack([sign * (p[:, 0] - x_o[0]), x_o[1] - p[:, 1]], axis=-1)
            theta = _rotate_back(z)
            ok = (p[:, 0] >= x_o[0]) & (np.abs(theta) <= 1.0).all(axis=1)
            kept.append(theta[ok])
            found += int(ok.sum())
            proposed += batch
        return np.concatenate(kept)[:n]
