"""Calibration over held-out true-simulator pairs: TARP, HPD coverage, recovery, invalid rows.

All functions take posterior draws at the test pairs, ``draws (S, N, p)`` with ``S`` draws from
``q(. | x_i)`` for each of ``N`` pairs, so that one set of draws serves SBC, TARP, coverage and
recovery. Rows whose simulator output is not finite (the simulator failed there) are dropped
first by :func:`finite_pairs`, which reports how many: sbi's own SBC and TARP break on NaN rows.

* :func:`tarp` (Lemos et al. 2023): for random reference points, the fraction ``f_i`` of draws
  closer to the reference than the true parameter is uniform on [0, 1] when ``q`` is calibrated;
  its empirical CDF is the expected coverage curve, ``atc`` its signed area above the diagonal
  beyond 0.5 (negative: overconfident) and a Kolmogorov-Smirnov test checks uniformity.
* :func:`hpd_coverage`: the fraction of pairs whose true parameter lies inside the highest-density
  region of credibility ``alpha``, for a grid of ``alpha``; calibrated means equal to ``alpha``.
* :func:`recovery`: posterior-mean error and posterior contraction, per parameter.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from inference.posterior import Posterior
from simulators.errors import ConfigError

__all__ = [
    "coverage_from_levels",
    "finite_pairs",
    "hpd_coverage",
    "hpd_levels",
    "ranks_from_draws",
    "recovery",
    "recovery_from_moments",
    "tarp",
    "tarp_coverage_values",
    "tarp_curve",
    "tarp_references",
]


def finite_pairs(theta: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop pairs whose ``theta`` or ``x`` holds NaN or infinite values.

    Parameters
    ----------
    theta : (N, p)
    x : (N, d)

    Returns
    -------
    theta : (N_valid, p)
    x : (N_valid, d)
    n_invalid : int
        Pairs dropped.
    """
    theta = np.asarray(theta, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if theta.ndim != 2 or x.ndim != 2 or len(theta) != len(x):
        raise ConfigError(
            f"theta and x must be (N, p) and (N, d) with the same N, got {theta.shape} and "
            f"{x.shape}"
        )
    keep = np.isfinite(theta).all(axis=1) & np.isfinite(x).all(axis=1)
    return theta[keep], x[keep], int((~keep).sum())


def _check_draws(draws: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    draws = np.asarray(draws, dtype=np.float64)
    theta = np.asarray(theta, dtype=np.float64)
    if draws.ndim != 3 or theta.ndim != 2 or draws.shape[1:] != theta.shape:
        raise ConfigError(
            f"draws must be (S, N, p) for theta (N, p), got {draws.shape} and {theta.shape}; "
            "draw S samples at each of the N test pairs"
        )
    return draws, theta


def ranks_from_draws(draws: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """SBC rank of each true parameter among its draws: ``(N, p)`` ints in ``[0, S]``."""
    draws, theta = _check_draws(draws, theta)
    return (draws < theta[None]).sum(axis=0).astype(np.int64)


def tarp_references(theta: np.ndarray, seed: int) -> np.ndarray:
    """TARP's reference points for the pairs ``theta`` ``(N, p)``: uniform in the unit box
    ``(N, p)`` (one row per pair, so a block of pairs takes its own rows)."""
    return np.random.default_rng(seed).uniform(size=np.shape(theta))


def tarp_coverage_values(
    draws: np.ndarray, theta: np.ndarray, references: np.ndarray, box: np.ndarray
) -> np.ndarray:
    """TARP's coverage value ``f_i`` of each pair: the share of its draws closer to its reference
    point than its true parameter.

    Parameters
    ----------
    draws : (S, B, p)
    theta : (B, p)
    references : (B, p)
        In the unit box (:func:`tarp_references`, the rows of these pairs).
    box : (2, p)
        Low and high corner of the box of *all* pairs' ``theta``, which scales parameters to
        [0, 1] so that no parameter dominates the distance.

    Returns
    -------
    coverage : (B,)
        Uniform on [0, 1] when ``q`` is calibrated.
    """
    draws, theta = _check_draws(draws, theta)
    low, high = np.asarray(box, dtype=np.float64)
    span = np.where(high > low, high - low, 1.0)
    draws, theta = (draws - low) / span, (theta - low) / span
    sample_distance = np.linalg.norm(draws - references[None], axis=-1)
    theta_distance = np.linalg.norm(theta - references, axis=-1)
    return (sample_distance < theta_distance[None]).mean(axis=0)


def tarp_curve(coverage: np.ndarray, *, n_bins: int = 20) -> dict[str, np.ndarray | float]:
    """TARP's expected coverage curve from the coverage values ``(N,)`` of all pairs.

    Returns
    -------
    result : dict
        ``alpha`` and ``ecp`` ``(n_bins + 1,)`` (the curve), ``atc`` (float, 0 when calibrated,
        < 0 overconfident, > 0 underconfident), ``ks_pvalue`` (float, uniformity of the
        coverage values), ``coverage_values`` ``(N,)``.
    """
    coverage = np.asarray(coverage, dtype=np.float64)
    alpha = np.linspace(0.0, 1.0, n_bins + 1)
    ecp = (coverage[None] <= alpha[:, None]).mean(axis=1)
    upper = alpha >= 0.5
    atc = float(np.trapezoid(ecp[upper] - alpha[upper], alpha[upper]))
    ks = stats.kstest(coverage, "uniform").pvalue if len(coverage) else np.nan
    return {
        "alpha": alpha,
        "ecp": ecp,
        "atc": atc,
        "ks_pvalue": float(ks),
        "coverage_values": coverage,
    }


def tarp(
    draws: np.ndarray, theta: np.ndarray, seed: int, *, n_bins: int = 20
) -> dict[str, np.ndarray | float]:
    """TARP expected coverage with references drawn uniformly over the box of ``theta``.

    Parameters are scaled to [0, 1] by the range of ``theta`` first (so no parameter dominates
    the distance). The same as :func:`tarp_coverage_values` over all pairs, then
    :func:`tarp_curve` (which scoring in blocks of pairs does in two steps).

    Parameters
    ----------
    draws : (S, N, p)
    theta : (N, p)
    seed : int
        Seeds the reference points.
    n_bins : int
        Points of the coverage curve (plus the origin).

    Returns
    -------
    result : dict
        As :func:`tarp_curve`.
    """
    draws, theta = _check_draws(draws, theta)
    box = np.stack([theta.min(axis=0), theta.max(axis=0)])
    coverage = tarp_coverage_values(draws, theta, tarp_references(theta, seed), box)
    return tarp_curve(coverage, n_bins=n_bins)


def hpd_levels(
    posterior: Posterior, draws: np.ndarray, theta: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """The credibility of the smallest HPD region of ``q(. | x_i)`` that holds ``theta_i``.

    The true parameter lies inside the HPD region of credibility ``alpha`` when less than
    ``alpha`` of the draws have a higher density than it. The prior-support renormalisation of
    ``q`` is the same for all draws at one ``x``, so the raw estimator density ranks them
    (:meth:`~inference.posterior.Posterior.log_prob_unnormalised`, which every method has).

    Parameters
    ----------
    posterior : Posterior
    draws : (S, N, p)
        From ``q(. | x_i)``.
    theta : (N, p)
    x : (N, d)

    Returns
    -------
    level : (N,)
        Share of the draws denser than ``theta_i``; uniform on [0, 1] when calibrated.
    """
    draws, theta = _check_draws(draws, theta)
    x = np.asarray(x, dtype=np.float64)
    n_draws, n_pairs, n_params = draws.shape
    log_draws = posterior.log_prob_unnormalised(
        draws.reshape(n_draws * n_pairs, n_params), np.tile(x, (n_draws, 1))
    ).reshape(n_draws, n_pairs)
    log_theta = posterior.log_prob_unnormalised(theta, x)
    return (log_draws > log_theta[None]).mean(axis=0)


def coverage_from_levels(levels: np.ndarray, credibility: np.ndarray) -> np.ndarray:
    """Share of ``levels`` ``(N,)`` at or below each credibility ``(L,)``: ``(L,)``."""
    levels = np.asarray(levels, dtype=np.float64)
    levels = levels[np.isfinite(levels)]
    return (levels[None] <= np.asarray(credibility, dtype=np.float64)[:, None]).mean(axis=1)


def hpd_coverage(
    posterior: Posterior,
    draws: np.ndarray,
    theta: np.ndarray,
    x: np.ndarray,
    credibility: np.ndarray,
) -> np.ndarray:
    """Expected coverage of the highest-density regions of ``q`` (see :func:`hpd_levels`).

    Parameters
    ----------
    posterior : Posterior
    draws : (S, N, p)
        From ``q(. | x_i)``.
    theta : (N, p)
    x : (N, d)
    credibility : (L,)
        Levels in [0, 1].

    Returns
    -------
    coverage : (L,)
        Fraction of pairs covered at each level; equal to ``credibility`` when calibrated.
    """
    return coverage_from_levels(hpd_levels(posterior, draws, theta, x), credibility)


def recovery(
    draws: np.ndarray, theta: np.ndarray, prior_variance: np.ndarray
) -> dict[str, np.ndarray]:
    """Posterior-mean error and contraction per parameter.

    Parameters
    ----------
    draws : (S, N, p)
    theta : (N, p)
    prior_variance : (p,)

    Returns
    -------
    result : dict
        ``mean_error`` ``(p,)``: root mean square of ``E_q[theta] - theta_i`` over pairs;
        ``contraction`` ``(p,)``: mean of ``1 - Var_q[theta] / Var_prior[theta]`` (1: the
        data pin the parameter down, 0: nothing learned).
    """
    draws, theta = _check_draws(draws, theta)
    return recovery_from_moments(draws.mean(axis=0), draws.var(axis=0), theta, prior_variance)


def recovery_from_moments(
    mean: np.ndarray, variance: np.ndarray, theta: np.ndarray, prior_variance: np.ndarray
) -> dict[str, np.ndarray]:
    """:func:`recovery` from each pair's posterior mean and variance, ``(N, p)`` each (what a
    block of pairs keeps of its draws), ``theta`` ``(N, p)`` and ``prior_variance`` ``(p,)``."""
    error = np.asarray(mean, dtype=np.float64) - np.asarray(theta, dtype=np.float64)
    contraction = 1.0 - np.asarray(variance) / np.asarray(prior_variance)[None]
    return {
        "mean_error": np.sqrt((error**2).mean(axis=0)),
        "contraction": contraction.mean(axis=0),
    }
