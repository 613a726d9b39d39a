"""sbibm's Gaussian linear model with observations noisier than the model, as in Ward et al.

Assumed model: ``theta ~ N(0, prior_var I)``, ``x ~ N(theta, noise_var I)`` (sbibm: ``dim = 10``,
both variances 0.1). Observations come from ``y ~ N(theta0, dgp_noise_var I)``; Ward et al. use
``dgp_noise_var = 0.1 + 0.1``. The knob is ``dgp_noise_var``; it is well specified at
``noise_var``.

Both posteriors are conjugate Gaussians, independent across dimensions. With noise variance
``s`` (``noise_var`` for the assumed posterior, ``dgp_noise_var`` for the DGP posterior)::

    theta | y ~ N(c y, c s I),   c = prior_var / (prior_var + s).

Under the DGP the assumed posterior's mean has error ``c y - theta0 ~ N(-(1-c) theta0,
c^2 dgp_noise_var I)``, so its level-``a`` HPD ball (radius ``sqrt(c noise_var q_a)``, ``q_a`` the
chi-square(dim) quantile) holds ``theta0`` with probability ``P(chi2'(dim, lambda) <= q_a
noise_var / (c dgp_noise_var))``, ``lambda = (1-c)^2 |theta0|^2 / (c^2 dgp_noise_var)``; averaged
over the prior, ``P(chi2(dim) <= q_a c noise_var / (c^2 dgp_noise_var + (1-c)^2 prior_var))``.

References
----------
Ward, D., Cannon, P., Beaumont, M., Fasiolo, M. & Schmon, S. M. (2022). Robust neural posterior
estimation and statistical model criticism. NeurIPS 35.

Lueckmann, J.-M. et al. (2021). Benchmarking simulation-based inference. AISTATS (sbibm).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulators.base import ExactPosterior, Simulator
from simulators.errors import ConfigError
from simulators.misspecified import (
    ConjugateNormal,
    Misspecified,
    expected_log_density,
    hpd_coverage,
)
from simulators.prior import Parameter, Prior

__all__ = ["MisspecifiedGaussianLinear"]


class MisspecifiedGaussianLinear(Simulator, ExactPosterior, Misspecified):
    """``x = theta + sqrt(noise_var) eps``; observations ``y = theta + sqrt(dgp_noise_var) eps``.

    Parameters
    ----------
    dim : int
        Number of parameters, equal to the number of outputs.
    prior_var, noise_var, dgp_noise_var : float
        Variances (not standard deviations) of the prior, of the assumed noise and of the
        observations' noise (the knob).
    """

    name = "misspecified_gaussian_linear"
    knob = "dgp_noise_var"

    def __init__(
        self,
        dim: int = 10,
        prior_var: float = 0.1,
        noise_var: float = 0.1,
        dgp_noise_var: float = 0.2,
    ) -> None:
        if int(dim) != dim or dim < 1 or min(prior_var, noise_var, dgp_noise_var) <= 0:
            raise ConfigError(
                f"misspecified_gaussian_linear needs an integer dim >= 1 and positive variances, "
                f"got dim={dim}, prior_var={prior_var}, noise_var={noise_var}, "
                f"dgp_noise_var={dgp_noise_var}; e.g. dim=10, prior_var=0.1, noise_var=0.1, "
                f"dgp_noise_var=0.2"
            )
        self.dim = int(dim)
        self.assumed = ConjugateNormal(float(prior_var), float(noise_var))
        self.dgp = ConjugateNormal(float(prior_var), float(dgp_noise_var))
        self.prior = Prior(
            parameters=tuple(
                Parameter(name=f"theta_{i}", distribution="normal", scale=math.sqrt(prior_var))
                for i in range(self.dim)
            )
        )
        self.output_names = tuple(f"x_{i}" for i in range(self.dim))

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "prior_var": self.assumed.prior_var,
            "noise_var": self.assumed.noise_var,
            "dgp_noise_var": self.dgp.noise_var,
        }

    @property
    def well_specified_value(self) -> float:
        return self.assumed.noise_var

    def _simulate(self, theta: np.ndarray, seeds: np.ndarray, variance: float) -> np.ndarray:
        noise = np.stack([np.random.default_rng(int(s)).standard_normal(self.dim) for s in seeds])
        return np.asarray(theta, dtype=np.float64) + math.sqrt(variance) * noise

    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        return self._simulate(theta, seeds, self.assumed.noise_var)

    def simulate_dgp(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """``theta + sqrt(dgp_noise_var) eps``, with the same ``eps`` as ``simulate``."""
        return self._simulate(theta, seeds, self.dgp.noise_var)

    def posterior_moments(self, x_o: np.ndarray) -> tuple[np.ndarray, float]:
        """Mean ``(dim,)`` and per-dimension variance of the assumed posterior."""
        return self.assumed.posterior_moments(x_o)

    def dgp_posterior_moments(self, x_o: np.ndarray) -> tuple[np.ndarray, float]:
        """Mean ``(dim,)`` and per-dimension variance of the posterior under the DGP."""
        return self.dgp.posterior_moments(x_o)

    def sample_posterior(self, x_o: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.assumed.sample(x_o, n, rng)

    def sample_dgp_posterior(self, x_o: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.dgp.sample(x_o, n, rng)

    def coverage(
        self, level: float | np.ndarray, theta0: np.ndarray | None = None
    ) -> float | np.ndarray:
        """Probability that the assumed posterior's ``level`` HPD ball holds theta0 (DGP data).

        ``theta0`` of shape ``(dim,)`` is fixed, or drawn from the prior when omitted.
        """
        return hpd_coverage(level, self.assumed, self.dgp.noise_var, self.dim, theta0)

    def expected_log_posterior(self, theta0: np.ndarray | None = None) -> float:
        """``E log p_assumed(theta0 | y)`` over DGP observations (theta0 from the prior if None)."""
        return expected_log_density(self.assumed, self.dgp.noise_var, self.dim, theta0)
