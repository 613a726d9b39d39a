"""SLCP, "simple likelihood, complex posterior", as in sbibm (Lueckmann et al. 2021).

Prior ``theta ~ U(-3, 3)^5``. Each output is 4 independent draws from a 2-D Gaussian with mean
``(theta_1, theta_2)``, standard deviations ``s_1 = theta_3^2``, ``s_2 = theta_4^2`` and
correlation ``rho = tanh(theta_5)``; sbibm adds ``1e-6`` to the covariance's diagonal, and so
does this module. ``x = (x_11, x_12, x_21, x_22, ..., x_42)``, 8 values. The likelihood is the
product of the 4 Gaussian densities; the posterior (four symmetric modes from the signs of
``theta_3`` and ``theta_4``) has no closed form.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from simulators.base import Likelihood, Simulator, likelihood_pairs
from simulators.prior import Parameter, Prior

__all__ = ["SLCP"]

_DRAWS = 4
_EPS = 1e-6


def _covariance(theta: np.ndarray) -> np.ndarray:
    """Covariances ``(n, 2, 2)`` of parameters ``(n, 5)``."""
    s1, s2 = theta[:, 2] ** 2, theta[:, 3] ** 2
    rho = np.tanh(theta[:, 4])
    cov = np.empty((theta.shape[0], 2, 2))
    cov[:, 0, 0] = s1**2 + _EPS
    cov[:, 1, 1] = s2**2 + _EPS
    cov[:, 0, 1] = cov[:, 1, 0] = rho * s1 * s2
    return cov


_FLIPS = ((1, 1, -1, 1, 1), (1, 1, 1, -1, 1), (1, 1, -1, -1, 1))


def _flip(theta: np.ndarray, signs: tuple[int, ...]) -> np.ndarray:
    """``theta * signs``, ``(n, 5) -> (n, 5)``."""
    return np.asarray(theta) * np.asarray(signs, dtype=np.float64)


class SLCP(Simulator, Likelihood):
    """sbibm's SLCP: 5 parameters, 8 outputs (4 iid 2-D Gaussian draws), exact likelihood."""

    name = "slcp"

    def __init__(self) -> None:
        self.prior = Prior(
            parameters=tuple(
                Parameter(name=f"theta_{i}", distribution="uniform", low=-3.0, high=3.0)
                for i in range(5)
            )
        )
        self.output_names = tuple(f"x_{k}_{j}" for k in range(_DRAWS) for j in range(2))

    @property
    def settings(self) -> dict[str, Any]:
        return {}

    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=np.float64)
        eps = np.stack([np.random.default_rng(int(s)).standard_normal((_DRAWS, 2)) for s in seeds])
        chol = np.linalg.cholesky(_covariance(theta))  # (n, 2, 2), lower
        draws = theta[:, None, :2] + np.einsum("nij,nkj->nki", chol, eps)
        return draws.reshape(len(seeds), 2 * _DRAWS)

    def posterior_symmetries(self) -> tuple[Callable[[np.ndarray], np.ndarray], ...]:
        """Sign flips of ``theta_3``, ``theta_4`` and both: the standard deviations are their
        squares, and the correlation term ``rho s_1 s_2`` does not see the signs."""
        return tuple(partial(_flip, signs=signs) for signs in _FLIPS)

    def log_likelihood(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        theta, x = likelihood_pairs(theta, x, 5, 2 * _DRAWS)
        cov = _covariance(theta)
        det = cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] ** 2
        d = x.reshape(-1, _DRAWS, 2) - theta[:, None, :2]
        # quadratic form d^T cov^-1 d with the 2x2 inverse written out
        quad = (
            cov[:, None, 1, 1] * d[..., 0] ** 2
            - 2 * cov[:, None, 0, 1] * d[..., 0] * d[..., 1]
            + cov[:, None, 0, 0] * d[..., 1] ** 2
        ) / det[:, None]
        return -0.5 * quad.sum(axis=1) - _DRAWS * (math.log(2 * math.pi) + 0.5 * np.log(det))
