"""Maximum mean discrepancy (MMD) with a Gaussian kernel, and its permutation test.

``MMD^2(P, Q) = E k(a, a') + E k(b, b') - 2 E k(a, b)`` is zero exactly when ``P = Q`` (for the
Gaussian kernel ``k(a, b) = exp(-|a - b|^2 / (2 l^2))``). For ``P = N(0, s^2 I)`` and
``Q = N(mu, s^2 I)`` in ``p`` dimensions it has the closed form
``2 (l^2 / (l^2 + 2 s^2))^(p / 2) (1 - exp(-|mu|^2 / (2 (l^2 + 2 s^2))))``, which the tests use.

Samples are z-scored by the first sample's mean and standard deviation, so the score does not
depend on the parameters' units; the bandwidth defaults to the median pairwise distance of the
pooled (z-scored) samples (the median heuristic).
"""

from __future__ import annotations

import numpy as np
import torch

from inference.seeds import check_seed
from simulators.errors import ConfigError

__all__ = [
    "cross_median_bandwidth",
    "gaussian_kernel",
    "median_bandwidth",
    "mmd",
    "mmd2_tensor",
    "mmd_permutation_pvalue",
]

_MAX_ROWS = 4000


def _pair(a: np.ndarray, b: np.ndarray, standardise: bool) -> tuple[torch.Tensor, torch.Tensor]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise ConfigError(
            f"mmd needs two samples (n, p) and (m, p) with n, m >= 2, got {a.shape} and "
            f"{b.shape}; pass one row per draw"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ConfigError("mmd got NaN or infinite values; drop those samples first")
    if standardise:
        mean, std = a.mean(axis=0), a.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        a, b = (a - mean) / std, (b - mean) / std
    return torch.as_tensor(a[:_MAX_ROWS]), torch.as_tensor(b[:_MAX_ROWS])


def median_bandwidth(a: torch.Tensor, b: torch.Tensor) -> float:
    """Median pairwise distance of the pooled samples (at most 1000 rows of each)."""
    pooled = torch.cat([a[:1000], b[:1000]])
    distances = torch.cdist(pooled, pooled)
    upper = distances[torch.triu_indices(len(pooled), len(pooled), offset=1).unbind()]
    return float(upper.median()) or 1.0


def cross_median_bandwidth(a: torch.Tensor, b: torch.Tensor) -> float:
    """Median distance between the rows of ``a`` and of ``b`` (at most 1000 rows of each).

    Unlike :func:`median_bandwidth` it stays on the scale of the gap between two samples that
    lie far apart, where a kernel as narrow as the pooled median gives an MMD^2 near its maximum
    and no gradient: the bandwidth a training penalty needs.
    """
    return float(torch.cdist(a[:1000], b[:1000]).median()) or 1.0


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Gaussian kernel matrix ``exp(-|a_i - b_j|^2 / (2 bandwidth^2))``, ``(n, m)``."""
    return torch.exp(-(torch.cdist(a, b) ** 2) / (2.0 * bandwidth**2))


def mmd2_tensor(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """Squared MMD of two samples as a differentiable tensor (a training loss can use it).

    The within-sample terms exclude the diagonal (unbiased) for a sample of two rows or more;
    a sample of one row contributes ``k(b, b) = 1`` (there is no pair to average over).

    Parameters
    ----------
    a : (n, p)
    b : (m, p)
    bandwidth : float

    Returns
    -------
    mmd2 : scalar tensor
    """

    def within(c: torch.Tensor) -> torch.Tensor:
        k = len(c)
        if k < 2:
            return torch.ones((), dtype=c.dtype, device=c.device)
        return (gaussian_kernel(c, c, bandwidth).sum() - k) / (k * (k - 1))

    return within(a) + within(b) - 2 * gaussian_kernel(a, b, bandwidth).mean()


def _mmd2(a: torch.Tensor, b: torch.Tensor, bandwidth: float) -> float:
    """Unbiased MMD^2 estimate (diagonal terms excluded)."""
    return float(mmd2_tensor(a, b, bandwidth))


def mmd(
    a: np.ndarray, b: np.ndarray, *, bandwidth: float | None = None, standardise: bool = True
) -> float:
    """Unbiased estimate of the squared MMD between two samples.

    Parameters
    ----------
    a : (n, p)
    b : (m, p)
        At most the first 4000 rows of each are used.
    bandwidth : float, optional
        Kernel length scale in z-scored units; default :func:`median_bandwidth`.
    standardise : bool
        Z-score both samples by the mean and standard deviation of ``a`` first.

    Returns
    -------
    mmd2 : float
        About 0 (it can be slightly negative) for samples of one distribution.
    """
    a_t, b_t = _pair(a, b, standardise)
    if bandwidth is None:
        bandwidth = median_bandwidth(a_t, b_t)
    elif not bandwidth > 0:
        raise ConfigError(f"bandwidth must be positive, got {bandwidth}; or leave it out")
    return _mmd2(a_t, b_t, float(bandwidth))


def mmd_permutation_pvalue(
    a: np.ndarray, b: np.ndarray, seed: int, *, n_permutations: int = 200
) -> tuple[float, float]:
    """MMD^2 and its permutation p-value for ``H0: a and b come from one distribution``.

    Parameters
    ----------
    a : (n, p)
    b : (m, p)
    seed : int
        Seeds the permutations.
    n_permutations : int

    Returns
    -------
    mmd2 : float
    pvalue : float
        ``(1 + #{permuted >= observed}) / (1 + n_permutations)``, valid at any sample size.
    """
    a_t, b_t = _pair(a, b, True)
    bandwidth = median_bandwidth(a_t, b_t)
    observed = _mmd2(a_t, b_t, bandwidth)
    pooled, n = torch.cat([a_t, b_t]), len(a_t)
    generator = torch.Generator().manual_seed(check_seed(seed))
    exceed = 0
    for _ in range(n_permutations):
        order = torch.randperm(len(pooled), generator=generator)
        exceed += _mmd2(pooled[order[:n]], pooled[order[n:]], bandwidth) >= observed
    return observed, (1 + exceed) / (1 + n_permutations)
