"""Simulators whose observations come from a data-generating process (DGP) other than the model.

A misspecified model has two likelihoods: the *assumed* one, ``simulate``, which inference
trains on, and the *DGP*, ``simulate_dgp``, which makes the observations. One setting, the
*knob*, says how far apart they are; at :attr:`Misspecified.well_specified_value` they agree.
Each such model also knows the posterior under the DGP, so every score can be taken against
the posterior the assumed model gives or against the one the truth gives.

:class:`ConjugateNormal` holds the arithmetic the toy models share: a statistic
``u ~ N(theta, noise_var I)`` with prior ``theta ~ N(0, prior_var I)``, its conjugate posterior,
and the frequentist coverage of that posterior's HPD region when ``u`` really has another noise
variance (:func:`hpd_coverage`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from simulators.base import Simulator
from simulators.errors import ConfigError
from simulators.registry import make_simulator

__all__ = [
    "ConjugateNormal",
    "DGPSimulator",
    "Misspecified",
    "at_degree",
    "expected_log_density",
    "hpd_coverage",
    "require_knob",
]


class Misspecified(ABC):
    """Mixin for simulators with a DGP that differs from the assumed model by a knob.

    Attributes
    ----------
    knob : str
        Name of the setting (a key of ``settings``) that sets the degree of misspecification.
    """

    knob: str

    @property
    def knob_value(self) -> float:
        """The current value of the knob setting."""
        settings: dict[str, Any] = self.settings  # type: ignore[attr-defined]
        return float(settings[self.knob])

    @property
    @abstractmethod
    def well_specified_value(self) -> float:
        """The knob value at which the DGP equals the assumed model."""

    @abstractmethod
    def simulate_dgp(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Observations from the DGP, with the same seeding contract as ``simulate``.

        Parameters
        ----------
        theta : (batch, n_params) float64
            The true parameters.
        seeds : (batch,) uint64

        Returns
        -------
        y : (batch, n_outputs) float64
        """

    @abstractmethod
    def sample_dgp_posterior(self, x_o: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw from the posterior of a model that is the DGP, at observation ``x_o``.

        Parameters
        ----------
        x_o : (n_outputs,)
        n : int
        rng : numpy Generator

        Returns
        -------
        theta : (n, n_params) float64
        """


def require_knob(model: Simulator) -> None:
    """Refuse a simulator that is not :class:`Misspecified` (it has no knob).

    Raises
    ------
    ConfigError
        Naming the misspecified models and the observation-model knob to use instead.
    """
    if not isinstance(model, Misspecified):
        raise ConfigError(
            f"simulator {model.name!r} has no data-generating process other than itself, so it "
            "has no misspecification knob; use a misspecified model (normal_location, "
            "ward_gaussian, misspecified_gaussian_linear) or sweep observation_model.scale"
        )


def at_degree(model: Simulator, degree: float) -> Simulator:
    """A copy of the misspecified ``model`` with its knob set to ``degree``.

    Raises
    ------
    ConfigError
        If ``model`` is not :class:`Misspecified` (it has no knob).
    """
    require_knob(model)
    return make_simulator(model.name, **{**model.settings, model.knob: float(degree)})


class DGPSimulator(Simulator):
    """The data-generating process of a misspecified simulator, as a :class:`Simulator`.

    Its ``simulate`` is the model's ``simulate_dgp``, so the campaign engine (Dask, the Zarr
    store, retries) makes the observations of a misspecification sweep like any other runs.

    Parameters
    ----------
    model : Simulator and Misspecified
        The assumed model with its knob at the wanted degree.
    """

    def __init__(self, model: Simulator) -> None:
        require_knob(model)
        self.model = model
        self.name = f"{model.name}:dgp"
        self.prior = model.prior
        self.output_names = model.output_names

    @property
    def settings(self) -> dict[str, Any]:
        return {**self.model.settings, "process": "dgp"}

    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        return self.model.simulate_dgp(theta, seeds)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ConjugateNormal:
    """``u ~ N(theta, noise_var I)`` with prior ``theta ~ N(0, prior_var I)``.

    The posterior is ``N(c u, v I)`` with shrinkage ``c = prior_var / (prior_var + noise_var)``
    and variance ``v = c * noise_var`` (precision ``1/prior_var + 1/noise_var``).
    """

    prior_var: float
    noise_var: float

    def __post_init__(self) -> None:
        if not (self.prior_var > 0 and self.noise_var > 0):
            raise ConfigError(
                f"variances must be positive, got prior_var={self.prior_var}, "
                f"noise_var={self.noise_var}; pass variances (not standard deviations) > 0"
            )

    @property
    def shrinkage(self) -> float:
        """``c``: the posterior mean is ``c u``."""
        return self.prior_var / (self.prior_var + self.noise_var)

    @property
    def posterior_var(self) -> float:
        """``v``: the per-dimension posterior variance."""
        return self.shrinkage * self.noise_var

    def posterior_moments(self, u: np.ndarray) -> tuple[np.ndarray, float]:
        """Posterior mean ``(dim,)`` (same shape as ``u``) and per-dimension variance."""
        return self.shrinkage * np.asarray(u, dtype=np.float64), self.posterior_var

    def sample(self, u: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` exact posterior draws, ``(n, dim)``, at statistic ``u`` of shape ``(dim,)``."""
        mean, var = self.posterior_moments(np.atleast_1d(u))
        return mean + math.sqrt(var) * rng.standard_normal((n, mean.shape[0]))


def _error_variance(
    model: ConjugateNormal, dgp_noise_var: float, theta0: np.ndarray | None
) -> tuple[float, float]:
    """Variance ``w`` and squared bias per unit ``w`` of the posterior mean's error.

    With ``u = theta0 + e``, ``e ~ N(0, dgp_noise_var I)``, the error of the posterior mean is
    ``c u - theta0 = c e - (1 - c) theta0``. For a fixed ``theta0`` it is ``N(-(1-c) theta0,
    c^2 dgp_noise_var I)``; averaged over ``theta0 ~ N(0, prior_var I)`` it is centred with
    variance ``c^2 dgp_noise_var + (1 - c)^2 prior_var`` per dimension.
    """
    c = model.shrinkage
    if theta0 is None:
        return c**2 * dgp_noise_var + (1 - c) ** 2 * model.prior_var, 0.0
    w = c**2 * dgp_noise_var
    return w, float(np.sum(((1 - c) * np.asarray(theta0, dtype=np.float64)) ** 2)) / w


def hpd_coverage(
    level: float | np.ndarray,
    model: ConjugateNormal,
    dgp_noise_var: float,
    dim: int,
    theta0: np.ndarray | None = None,
) -> float | np.ndarray:
    """How often the level-``level`` HPD region of ``model``'s posterior holds the true theta.

    The region is the ball ``|theta - c u|^2 <= v q`` with ``q`` the ``level`` quantile of
    chi-square with ``dim`` degrees of freedom (in one dimension, the central interval
    ``c u +- z sqrt(v)``). It holds ``theta0`` when ``|c u - theta0|^2 / w <= q v / w``, and
    ``|c u - theta0|^2 / w`` is non-central chi-square with ``dim`` degrees of freedom and
    non-centrality ``(1-c)^2 |theta0|^2 / w`` (central when averaged over the prior); see
    :func:`_error_variance` for ``w``. Averaged over the prior and with ``dgp_noise_var ==
    noise_var`` the coverage equals ``level``: a well-specified posterior is calibrated.

    Parameters
    ----------
    level : float or (k,) array in (0, 1)
    model : ConjugateNormal
        The assumed model the posterior comes from.
    dgp_noise_var : float
        The variance of ``u`` around theta under the DGP.
    dim : int
    theta0 : (dim,) array, optional
        A fixed true theta; when omitted, theta is drawn from the prior.

    Returns
    -------
    coverage : float or (k,) array
    """
    w, noncentrality = _error_variance(model, dgp_noise_var, theta0)
    bound = stats.chi2.ppf(level, dim) * model.posterior_var / w
    if noncentrality == 0.0:
        return stats.chi2.cdf(bound, dim)
    return stats.ncx2.cdf(bound, dim, noncentrality)


def expected_log_density(
    model: ConjugateNormal,
    dgp_noise_var: float,
    dim: int,
    theta0: np.ndarray | None = None,
) -> float:
    """Expected log density of ``model``'s posterior at the true theta over DGP observations.

    ``E[log N(theta0; c u, v I)] = -dim/2 log(2 pi v) - E|c u - theta0|^2 / (2 v)`` with
    ``E|c u - theta0|^2 = dim w + (1 - c)^2 |theta0|^2`` (prior-averaged: ``dim w``).
    """
    w, noncentrality = _error_variance(model, dgp_noise_var, theta0)
    mean_square = w * (dim + noncentrality)
    v = model.posterior_var
    return -0.5 * dim * math.log(2 * math.pi * v) - mean_square / (2 * v)
