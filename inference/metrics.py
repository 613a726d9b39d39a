"""Posterior quality metrics: C2ST, simulation-based calibration and NLTP.

Pure functions of numpy arrays (and of a :class:`~inference.posterior.Posterior` where samples
or densities are needed); every random choice comes from an explicit seed.

* :func:`c2st` (re-exported from :mod:`inference.c2st`, the fast batched-torch version) compares
  two samples, e.g. an approximate posterior against the exact one at one observation
  (0.5: indistinguishable, 1.0: disjoint).
* :func:`sbc_ranks` and :func:`sbc_uniformity_pvalues` test calibration over the prior
  predictive: for a calibrated posterior the rank of the true parameter among posterior draws
  is uniform.
* :func:`nltp` is the negative log posterior density of the true parameter. Over the prior
  predictive, ``E[-log q(theta | x)] = E[-log p(theta | x)] + E_x[KL(p(. | x) || q(. | x))]``:
  lower is better, and the exact posterior's value is the floor.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from inference.c2st import C2ST_FOLDS, c2st
from inference.posterior import Posterior
from inference.seeds import child_seed
from simulators.errors import ConfigError

__all__ = ["C2ST_FOLDS", "c2st", "sbc_ranks", "sbc_uniformity_pvalues", "nltp"]

_SBC_DRAWS_PER_CALL = 2**20


def sbc_ranks(
    posterior: Posterior,
    theta: np.ndarray,
    x: np.ndarray,
    n_samples: int,
    seed: int,
) -> np.ndarray:
    """Rank of each true parameter among posterior draws, per dimension.

    Parameters
    ----------
    posterior : Posterior
    theta : (N, n_params)
        True parameters drawn from the prior.
    x : (N, n_outputs)
        Outputs simulated from ``theta``.
    n_samples : int
        Posterior draws per pair.
    seed : int

    Returns
    -------
    ranks : (N, n_params) int64
        Number of draws from ``q(. | x_i)`` below ``theta_i``, in ``[0, n_samples]``.
    """
    theta = np.asarray(theta, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if theta.ndim != 2 or theta.shape[1] != posterior.theta_dim or len(theta) != len(x):
        raise ConfigError(
            f"sbc_ranks needs theta (N, {posterior.theta_dim}) and x (N, {posterior.x_dim}) with "
            f"the same N, got {theta.shape} and {x.shape}"
        )
    if n_samples < 1:
        raise ConfigError(f"n_samples must be >= 1, got {n_samples}")
    rows = max(1, _SBC_DRAWS_PER_CALL // n_samples)
    ranks = np.empty(theta.shape, dtype=np.int64)
    for index, start in enumerate(range(0, len(theta), rows)):
        stop = start + rows
        draws = posterior.sample_batched(x[start:stop], n_samples, child_seed(seed, index))
        ranks[start:stop] = (draws < theta[None, start:stop]).sum(axis=0)
    return ranks


def sbc_uniformity_pvalues(ranks: np.ndarray, n_samples: int, *, seed: int = 0) -> np.ndarray:
    """Per-dimension p-value of the hypothesis that SBC ranks are uniform.

    Under calibration each rank is uniform on the ``n_samples + 1`` integers
    ``0, ..., n_samples``. A Kolmogorov-Smirnov test needs a continuous null, and applying it to
    ``rank / n_samples`` directly would be wrong (the empirical CDF jumps at the atoms and the
    p-values are not uniform). Instead each rank gets an independent jitter ``v ~ U(0, 1)`` from
    a fixed seed: ``u = (rank + v) / (n_samples + 1)`` is then *exactly* ``U(0, 1)`` under the
    null (a uniform integer plus an independent uniform fraction is uniform on
    ``[0, n_samples + 1)``), so the KS p-value is valid at any ``n_samples``, with no binning
    choice to make. The jitter only blurs ranks within one atom, which costs a negligible amount
    of power when ``n_samples`` is much larger than one.

    Parameters
    ----------
    ranks : (N, n_params) int
        From :func:`sbc_ranks`.
    n_samples : int
        Posterior draws each rank was computed from.
    seed : int
        Seeds the jitter, so the p-values are reproducible.

    Returns
    -------
    pvalues : (n_params,) float64
        Small values reject calibration for that parameter.
    """
    ranks = np.asarray(ranks)
    if ranks.ndim != 2 or len(ranks) < 1:
        raise ConfigError(f"ranks must have shape (N, n_params) with N >= 1, got {ranks.shape}")
    if ranks.min() < 0 or ranks.max() > n_samples:
        raise ConfigError(
            f"ranks must lie in [0, n_samples={n_samples}], got [{ranks.min()}, {ranks.max()}]; "
            "pass the n_samples the ranks were computed with"
        )
    jitter = np.random.default_rng(seed).uniform(size=ranks.shape)
    u = (ranks + jitter) / (n_samples + 1)
    return np.array([stats.kstest(u[:, j], "uniform").pvalue for j in range(u.shape[1])])


def nltp(posterior: Posterior, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Negative log posterior density of each true parameter, pairwise.

    Parameters
    ----------
    posterior : Posterior
    theta : (N, n_params)
    x : (N, n_outputs)

    Returns
    -------
    nltp : (N,) float64
        ``-log q(theta_i | x_i)``.
    """
    return -posterior.log_prob(theta, x)
