"""Scores of a posterior at observations whose true parameters are known, as the
misspecification papers report them.

Frazier, Robert & Rousseau (2020) and Ward et al. (2022) judge a posterior under model
misspecification by where it puts the parameter that made the data, over many observations
from the data-generating process (DGP): the log density it gives the true ``theta0``
(``log q(theta0 | y)``), the HPD-region coverage of ``theta0`` (a calibrated posterior covers it
at every credibility as often as that credibility says), the squared error of the posterior
mean, and, where the DGP's own posterior is known, the C2ST against it.

:func:`score_at_observations` computes these for one posterior at one set of observations; the
study sweeps it over degrees of misspecification (:mod:`pipelines.degrees`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr

from inference.calibration import coverage_from_levels, hpd_levels
from inference.posterior import Posterior, check_count
from inference.seeds import check_seed, child_seed

__all__ = ["DEGREE_CREDIBILITY", "coverage_curve", "score_at_observations"]

DEGREE_CREDIBILITY = np.round(np.linspace(0.05, 0.95, 19), 2)
"""Credibility levels of the HPD-coverage curves."""


def score_at_observations(
    posterior: Posterior,
    theta0: np.ndarray,
    y: np.ndarray,
    *,
    n_draws: int,
    seed: int,
    truth: Callable[[np.ndarray, int, int], np.ndarray] | None = None,
    n_c2st: int = 0,
) -> xr.Dataset:
    """Score ``posterior`` at observations ``y`` made at known parameters ``theta0``.

    Parameters
    ----------
    posterior : Posterior
    theta0 : (N, p)
        The parameters the observations were simulated at.
    y : (N, d)
        The observations (from the DGP).
    n_draws : int
        Posterior draws per observation (for the HPD levels, the mean and the C2ST).
    seed : int
    truth : callable, optional
        ``truth(y_i, n, seed) -> (n, p)`` draws of the posterior that the DGP gives (the
        posterior a perfect method would return); when given, the C2ST against it is taken at
        the first ``n_c2st`` observations.
    n_c2st : int

    Returns
    -------
    xr.Dataset
        ``log_q_theta0`` (observation; NaN for an unnormalised posterior), ``hpd_level``
        (observation; the credibility of the smallest HPD region holding ``theta0``),
        ``squared_error`` (observation; ``|E_q[theta] - theta0|^2``), ``posterior_sd``
        (observation; the root of the mean marginal variance) and ``c2st_dgp``
        (c2st_observation), where a ``truth`` is given.
    """
    theta0 = np.atleast_2d(np.asarray(theta0, dtype=np.float64))
    y = np.asarray(y, dtype=np.float64)
    if len(theta0) != len(y):
        raise ValueError(
            f"theta0 has {len(theta0)} rows but y has {len(y)}; give one true parameter "
            "vector per observation"
        )
    n_draws, seed = check_count(n_draws, "n_draws"), check_seed(seed)
    draws = posterior.sample_batched(y, n_draws, child_seed(seed, 0))  # (S, N, p)
    log_q = (
        posterior.log_prob(theta0, y)
        if posterior.normalised
        else np.full(len(y), np.nan, dtype=np.float64)
    )
    mean = draws.mean(axis=0)
    data: dict[str, tuple[str | tuple[str, ...], np.ndarray]] = {
        "log_q_theta0": ("observation", np.asarray(log_q, dtype=np.float64)),
        "hpd_level": ("observation", hpd_levels(posterior, draws, theta0, y)),
        "squared_error": ("observation", ((mean - theta0) ** 2).sum(axis=1)),
        "posterior_sd": ("observation", np.sqrt(draws.var(axis=0).mean(axis=1))),
    }
    if truth is not None and n_c2st > 0:
        from inference.c2st import c2st

        shown = range(min(n_c2st, len(y)))
        data["c2st_dgp"] = (
            "c2st_observation",
            np.array(
                [
                    c2st(
                        truth(y[i], n_draws, child_seed(seed, 1, i)),
                        draws[:, i],
                        child_seed(seed, 2, i),
                    )
                    for i in shown
                ]
            ),
        )
    return xr.Dataset(data)


def coverage_curve(levels: np.ndarray) -> np.ndarray:
    """HPD coverage ``(L,)`` at :data:`DEGREE_CREDIBILITY` from per-observation levels ``(N,)``."""
    return coverage_from_levels(levels, DEGREE_CREDIBILITY)
