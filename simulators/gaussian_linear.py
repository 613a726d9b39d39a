"""The Gaussian linear model of sbibm, with its exact posterior.

Prior ``theta ~ N(0, prior_var I)``, likelihood ``x ~ N(theta, noise_var I)`` (variances,
0.1 and 0.1 in sbibm), so the posterior is Gaussian with
``cov = (1/prior_var + 1/noise_var)^-1 I`` and ``mean = cov x / noise_var``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulators.base import ExactPosterior, Likelihood, Simulator, likelihood_pairs
from simulators.errors import ConfigError
from simulators.prior import Parameter, Prior

__all__ = ["GaussianLinear"]


class GaussianLinear(Simulator, ExactPosterior, Likelihood):
    """``x = theta + sqrt(noise_var) * eps`` with ``eps ~ N(0, I)``.

    Parameters
    ----------
    dim : int
        Number of parameters, equal to the number of outputs.
    prior_var, noise_var : float
        Variances (not standard deviations) of the prior and of the noise.
    """

    name = "gaussian_linear"

    def __init__(self, dim: int = 10, prior_var: float = 0.1, noise_var: float = 0.1) -> None:
        if dim < 1 or prior_var <= 0 or noise_var <= 0:
            raise ConfigError(
                f"gaussian_linear needs dim >= 1 and positive variances, "
                f"got dim={dim}, prior_var={prior_var}, noise_var={noise_var}"
            )
        self.dim, self.prior_var, self.noise_var = int(dim), float(prior_var), float(noise_var)
        self.prior = Prior(
            parameters=tuple(
                Parameter(name=f"theta_{i}", distribution="normal", scale=math.sqrt(prior_var))
                for i in range(dim)
            )
        )
        self.output_names = tuple(f"x_{i}" for i in range(dim))

    @property
    def settings(self) -> dict[str, Any]:
        return {"dim": self.dim, "prior_var": self.prior_var, "noise_var": self.noise_var}

    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        noise = np.stack([np.random.default_rng(int(s)).standard_normal(self.dim) for s in seeds])
        return np.asarray(theta, dtype=np.float64) + math.sqrt(self.noise_var) * noise

    def log_likelihood(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        theta, x = likelihood_pairs(theta, x, self.dim, self.dim)
        squared = ((x - theta) ** 2).sum(axis=1) / self.noise_var
        return -0.5 * (squared + self.dim * math.log(2 * math.pi * self.noise_var))

    def posterior_moments(self, x_o: np.ndarray) -> tuple[np.ndarray, float]:
        """Mean ``(dim,)`` and per-dimension variance of the exact posterior at ``x_o``."""
        var = 1.0 / (1.0 / self.prior_var + 1.0 / self.noise_var)
        return var * np.asarray(x_o, dtype=np.float64) / self.noise_var, var

    def sample_posterior(self, x_o: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        mean, var = self.posterior_moments(x_o)
        return mean + math.sqrt(var) * rng.standard_normal((n, self.dim))
