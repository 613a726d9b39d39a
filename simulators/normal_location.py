"""The normal location model of Frazier, Robert & Rousseau, and Ward et al.'s version of it.

Assumed model: ``theta ~ N(0, prior_var)``, then ``n`` draws ``x_i ~ N(theta, 1)``, summarised by
their mean ``xbar`` and variance ``s2``. Observations come from a DGP with the same mean and
variance ``dgp_variance`` (``sigma2``): ``y_i ~ N(theta0, sigma2)``, the misspecification knob
(``sigma2 = 1`` is well specified; the papers study ``sigma2 > 1``).

The posterior given the summaries. Under ``N(theta, s)`` with ``s`` known, ``xbar ~ N(theta, s/n)``
and ``(n - 1) s2 / s ~ chi2(n - 1)`` are independent (Cochran), so the density of the summaries
factorises as ``N(xbar; theta, s/n) * g(s2)`` with ``g`` free of theta: ``s2`` is ancillary and
the posterior of the *summary-based* likelihood is the posterior given ``xbar`` alone, which is
also the posterior given the whole sample (``xbar`` is sufficient). With ``tau2 = prior_var``::

    theta | xbar ~ N(c xbar, c s / n),   c = n tau2 / (n tau2 + s),

with ``s = 1`` for the assumed posterior and ``s = sigma2`` for the DGP posterior (a model that is
the DGP, with ``sigma2`` known). The assumed posterior ignores ``s2``, which is exactly what
reveals the misspecification: for ``sigma2 > 1`` it is too narrow, by a factor ``~ sqrt(sigma2)``.

Coverage. The central level-``a`` interval of the assumed posterior is ``c xbar +- z sqrt(c/n)``
with ``z = Phi^-1((1 + a)/2)``. Under the DGP, ``xbar = theta0 + e`` with ``e ~ N(0, sigma2/n)``,
so ``c xbar - theta0 ~ N(-(1-c) theta0, c^2 sigma2 / n)`` and the interval holds ``theta0`` with
probability ``Phi(z / sqrt(c sigma2) - b) - Phi(-z / sqrt(c sigma2) - b)``, with bias
``b = (1-c) sqrt(n) theta0 / (c sqrt(sigma2)) = theta0 / (tau2 sqrt(n sigma2))``. At ``theta0 = 0``
it is ``P(|Z| <= z / sqrt(c sigma2))``. Averaged over ``theta0 ~ N(0, tau2)`` the error has
variance ``c^2 sigma2/n + (1-c)^2 tau2`` and the coverage is
``P(|Z| <= z sqrt((n tau2 + 1) / (n tau2 sigma2 + 1)))``, exactly ``a`` at ``sigma2 = 1``.

References
----------
Frazier, D. T., Robert, C. P. & Rousseau, J. (2020). Model misspecification in approximate
Bayesian computation: consequences and diagnostics. JRSS-B 82(2), 421-444.

Ward, D., Cannon, P., Beaumont, M., Fasiolo, M. & Schmon, S. M. (2022). Robust neural posterior
estimation and statistical model criticism. NeurIPS 35 (the "Gaussian" task: ``prior_var = 25``,
``n = 100``, ``dgp_variance = 2``, variance with divisor ``n``).
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

__all__ = ["NormalLocation", "WardGaussian"]

_SUMMARIES = ("mean", "variance")


class _NormalSummaries(Simulator, ExactPosterior, Misspecified):
    """Shared body of :class:`NormalLocation` and :class:`WardGaussian`; not registered.

    Subclasses set ``name``, ``ddof`` (the variance's divisor is ``n - ddof``) and the default
    of ``dgp_variance`` in their ``__init__``.
    """

    ddof: int
    knob = "dgp_variance"

    def __init__(
        self, n: int, prior_var: float, dgp_variance: float, summaries: str = "mean,variance"
    ) -> None:
        names = tuple(part.strip() for part in str(summaries).split(","))
        if not names or len(set(names)) != len(names) or not set(names) <= set(_SUMMARIES):
            raise ConfigError(
                f"{self.name}: summaries must be 'mean', 'variance' or both, comma-separated "
                f"('mean,variance'), got {summaries!r}"
            )
        if int(n) != n or n < 2 or not prior_var > 0 or not dgp_variance > 0:
            raise ConfigError(
                f"{self.name} needs an integer n >= 2 and positive variances, got n={n}, "
                f"prior_var={prior_var}, dgp_variance={dgp_variance}; e.g. "
                f"n=100, prior_var=25.0, dgp_variance=2.0"
            )
        self.n, self.prior_var, self.dgp_variance = int(n), float(prior_var), float(dgp_variance)
        self.output_names = names
        self.prior = Prior(
            parameters=(Parameter(name="theta", distribution="normal", scale=math.sqrt(prior_var)),)
        )
        self.assumed = ConjugateNormal(self.prior_var, 1.0 / self.n)
        self.dgp = ConjugateNormal(self.prior_var, self.dgp_variance / self.n)

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "prior_var": self.prior_var,
            "dgp_variance": self.dgp_variance,
            "summaries": ",".join(self.output_names),
        }

    @property
    def well_specified_value(self) -> float:
        return 1.0

    def _summaries(self, theta: np.ndarray, seeds: np.ndarray, variance: float) -> np.ndarray:
        """The chosen summaries (of mean and variance) of ``n`` draws ``N(theta, variance)`` per
        row, ``(batch, len(output_names))``."""
        theta = np.asarray(theta, dtype=np.float64).reshape(-1, 1)
        z = np.stack([np.random.default_rng(int(s)).standard_normal(self.n) for s in seeds])
        draws = theta + math.sqrt(variance) * z
        found = {"mean": draws.mean(axis=1), "variance": draws.var(axis=1, ddof=self.ddof)}
        return np.column_stack([found[name] for name in self.output_names])

    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        return self._summaries(theta, seeds, 1.0)

    def simulate_dgp(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Summaries of ``n`` draws ``N(theta, dgp_variance)``; the same ``z`` as ``simulate``."""
        return self._summaries(theta, seeds, self.dgp_variance)

    def _mean(self, x_o: np.ndarray) -> np.ndarray:
        """The sample-mean summary ``(1,)`` of one observation (the posterior's only input)."""
        if "mean" not in self.output_names:
            raise ConfigError(
                f"{self.name} with summaries {','.join(self.output_names)!r} has no closed-form "
                "posterior (the sample variance alone is not sufficient for theta); use "
                "summaries 'mean' or 'mean,variance'"
            )
        return np.asarray(x_o, dtype=np.float64)[self.output_names.index("mean")][None]

    def posterior_moments(self, x_o: np.ndarray) -> tuple[np.ndarray, float]:
        """Mean ``(1,)`` and variance of the assumed posterior; only the sample mean counts."""
        return self.assumed.posterior_moments(self._mean(x_o))

    def dgp_posterior_moments(self, x_o: np.ndarray) -> tuple[np.ndarray, float]:
        """Mean ``(1,)`` and variance of the posterior under ``N(theta, dgp_variance)``."""
        return self.dgp.posterior_moments(self._mean(x_o))

    def sample_posterior(self, x_o: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.assumed.sample(self._mean(x_o), n, rng)

    def sample_dgp_posterior(self, x_o: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        return self.dgp.sample(self._mean(x_o), n, rng)

    def coverage(
        self, level: float | np.ndarray, theta0: float | None = None
    ) -> float | np.ndarray:
        """Probability that the assumed posterior's central ``level`` interval holds theta0.

        Over observations from the DGP at a fixed ``theta0``, or with ``theta0`` drawn from the
        prior when omitted (see the module docstring for the formulas).
        """
        true = None if theta0 is None else np.array([theta0], dtype=np.float64)
        return hpd_coverage(level, self.assumed, self.dgp.noise_var, 1, true)

    def expected_log_posterior(self, theta0: float | None = None) -> float:
        """``E log p_assumed(theta0 | y)`` over DGP observations (theta0 from the prior if None)."""
        true = None if theta0 is None else np.array([theta0], dtype=np.float64)
        return expected_log_density(self.assumed, self.dgp.noise_var, 1, true)


class NormalLocation(_NormalSummaries):
    """Frazier, Robert & Rousseau's normal location model; sample variance with divisor n - 1.

    Parameters
    ----------
    n : int
        Draws per simulation.
    prior_var : float
        Prior variance of theta.
    dgp_variance : float
        Variance of the observations' draws (the knob; 1.0 is well specified, the default).
    summaries : str
        ``"mean,variance"`` (the papers' pair, which lets a method see the misspecification),
        ``"mean"`` (the sufficient statistic alone: methods cannot see it, and their posterior
        is the assumed one whose coverage :meth:`coverage` gives) or ``"variance"``.
    """

    name = "normal_location"
    ddof = 1

    def __init__(
        self,
        n: int = 100,
        prior_var: float = 25.0,
        dgp_variance: float = 1.0,
        summaries: str = "mean,variance",
    ) -> None:
        super().__init__(n, prior_var, dgp_variance, summaries)


class WardGaussian(_NormalSummaries):
    """Ward et al.'s "Gaussian" task: the same model, variance with divisor n, DGP variance 2.

    Parameters
    ----------
    n, prior_var, dgp_variance, summaries
        As :class:`NormalLocation`, with the paper's defaults 100, 25 and 2.
    """

    name = "ward_gaussian"
    ddof = 0

    def __init__(
        self,
        n: int = 100,
        prior_var: float = 25.0,
        dgp_variance: float = 2.0,
        summaries: str = "mean,variance",
    ) -> None:
        super().__init__(n, prior_var, dgp_variance, summaries)
