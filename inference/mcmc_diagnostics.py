"""Convergence diagnostics of several MCMC chains: split R-hat and effective sample size.

Neither Pyro (``pyro.ops.stats``) nor ArviZ is a dependency of emustudy, so the two standard
estimators are written out here, following Pyro's ``split_gelman_rubin`` and
``effective_sample_size``, which follow the Stan reference manual (Gelman et al., "Bayesian Data
Analysis", 3rd ed., section 11.4 and 11.5; Geyer's initial monotone sequence for the ESS).
"""

from __future__ import annotations

import numpy as np

from simulators.errors import ConfigError

__all__ = ["split_rhat", "effective_sample_size"]


def _check(chains: np.ndarray, least: int) -> np.ndarray:
    chains = np.asarray(chains, dtype=np.float64)
    if chains.ndim == 2:
        chains = chains[..., None]
    if chains.ndim != 3 or chains.shape[1] < least:
        raise ConfigError(
            f"chains must have shape (n_chains, n_draws >= {least}, n_params), got "
            f"{chains.shape}; run the chains longer"
        )
    return chains


def _variances(chains: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean within-chain variance ``W`` and the pooled estimate ``var+``, each ``(p,)``."""
    n = chains.shape[1]
    within = chains.var(axis=1, ddof=1).mean(axis=0)
    pooled = (n - 1) / n * within
    if chains.shape[0] > 1:
        pooled = pooled + chains.mean(axis=1).var(axis=0, ddof=1)
    return within, pooled


def split_rhat(chains: np.ndarray) -> np.ndarray:
    """Split-chain potential scale reduction factor per parameter.

    Parameters
    ----------
    chains : (n_chains, n_draws, n_params)
        Draws after warmup; each chain is split into halves.

    Returns
    -------
    rhat : (n_params,)
        About 1 for chains that sample one distribution; above 1.01-1.05 when they disagree or
        drift.
    """
    chains = _check(chains, 4)
    half = chains.shape[1] // 2
    split = np.concatenate([chains[:, :half], chains[:, -half:]], axis=0)
    within, pooled = _variances(split)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(pooled / within)


def _autocovariance(chains: np.ndarray) -> np.ndarray:
    """Biased autocovariance of each chain at every lag, ``(c, n, p) -> (c, n, p)``, by FFT."""
    n = chains.shape[1]
    centred = chains - chains.mean(axis=1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    spectrum = np.fft.rfft(centred, n=size, axis=1)
    return np.fft.irfft(spectrum * np.conj(spectrum), n=size, axis=1)[:, :n] / n


def effective_sample_size(chains: np.ndarray) -> np.ndarray:
    """Effective sample size per parameter of all chains together.

    Parameters
    ----------
    chains : (n_chains, n_draws, n_params)

    Returns
    -------
    ess : (n_params,)
        About ``n_chains * n_draws`` for independent draws, less for autocorrelated ones.
    """
    chains = _check(chains, 4)
    n_chains, n = chains.shape[:2]
    within, pooled = _variances(chains)
    gamma = _autocovariance(chains).mean(axis=0)  # (n, p)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = (pooled - within + gamma) / pooled
    rho[0] = 1.0
    pairs = rho[: 2 * (n // 2)].reshape(n // 2, 2, -1).sum(axis=1)  # Geyer's paired sums
    monotone = np.minimum.accumulate(np.clip(pairs[1:], 0.0, None), axis=0)
    tau = -1.0 + 2.0 * pairs[0] + 2.0 * monotone.sum(axis=0)
    return n_chains * n / tau
