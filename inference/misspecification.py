"""Would the user have been warned? Tests that an observation lies outside the training data.

A posterior trained on emulator outputs only knows the ``x`` the emulator produced; an
observation unlike those is a misspecification the user should be told about. Two tests, after
the ones of ``sbi.diagnostics.misspecification`` but seeded and without torch's global random
state, each giving one p-value per observation (small: warn):

* :func:`mmd_misspecification`: the MMD between one observation and a reference set of training
  outputs (Gaussian kernel, median-heuristic bandwidth, z-scored by the training outputs),
  calibrated against the same statistic for held-out training outputs (which are, by
  construction, not misspecified). With one observation the MMD is a decreasing function of the
  kernel density of the training outputs at the observation.
* :func:`logprob_misspecification`: a normalising flow (zuko MAF) fitted to the training
  outputs; the p-value is the fraction of held-out training outputs with a lower log density
  than the observation.
"""

from __future__ import annotations

import numpy as np
import torch

from inference.seeds import check_seed, seeded
from simulators.errors import ConfigError

__all__ = ["mmd_misspecification", "logprob_misspecification", "detection_rate"]


def _split(
    x_train: np.ndarray, x_obs: np.ndarray, n_null: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Z-score, then split the training outputs into a reference set and a null set."""
    x_train = np.asarray(x_train, dtype=np.float64)
    x_obs = np.asarray(x_obs, dtype=np.float64)
    if x_train.ndim != 2 or x_obs.ndim != 2 or x_obs.shape[1] != x_train.shape[1]:
        raise ConfigError(
            f"x_train must be (n, d) and x_obs (n_obs, d), got {x_train.shape} and {x_obs.shape}"
        )
    x_train = x_train[np.isfinite(x_train).all(axis=1)]
    if len(x_train) < 40:
        raise ConfigError(
            f"the misspecification tests need at least 40 finite training outputs, got "
            f"{len(x_train)}; pass the outputs the posterior was trained on"
        )
    n_null = min(n_null, len(x_train) // 2)  # small stores: half held out for the null
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    order = np.random.default_rng(check_seed(seed)).permutation(len(x_train))
    z = (x_train[order] - mean) / std
    return z[n_null:], z[:n_null], (x_obs - mean) / std


def mmd_misspecification(
    x_train: np.ndarray,
    x_obs: np.ndarray,
    seed: int,
    *,
    n_reference: int = 2000,
    n_null: int = 500,
) -> np.ndarray:
    """MMD-based misspecification p-value of each observation.

    Parameters
    ----------
    x_train : (n, d)
        Outputs the posterior was trained on (non-finite rows are ignored).
    x_obs : (n_obs, d)
    seed : int
        Seeds the reference / null split.
    n_reference, n_null : int
        Training outputs in the reference set and held out for the null (at most; at most half
        of ``x_train`` is held out).

    Returns
    -------
    pvalue : (n_obs,)
        ``(1 + #{null >= observed}) / (1 + n_null)``.
    """
    reference, null_x, z_obs = _split(x_train, x_obs, n_null, seed)
    reference = torch.as_tensor(reference[:n_reference])
    sub = reference[:1000]
    distances = torch.cdist(sub, sub)
    bandwidth = float(distances[torch.triu_indices(len(sub), len(sub), 1).unbind()].median())
    gamma = 1.0 / (2.0 * max(bandwidth, 1e-12) ** 2)

    def statistic(points: np.ndarray) -> np.ndarray:
        # MMD^2({x}, R) = 1 - 2 mean_r k(x, r) + const: only the middle term varies
        k = torch.exp(-gamma * torch.cdist(torch.as_tensor(points), reference) ** 2)
        return (1.0 - 2.0 * k.mean(dim=1)).numpy()

    observed, null = statistic(z_obs), statistic(null_x)
    return (1 + (null[None] >= observed[:, None]).sum(axis=1)) / (1 + len(null))


def logprob_misspecification(
    x_train: np.ndarray,
    x_obs: np.ndarray,
    seed: int,
    *,
    n_null: int = 500,
    steps: int = 400,
    transforms: int = 3,
) -> np.ndarray:
    """Marginal log-density misspecification p-value of each observation.

    Parameters
    ----------
    x_train : (n, d)
    x_obs : (n_obs, d)
    seed : int
        Seeds the split, the flow's initialisation and its mini-batches.
    n_null : int
        Training outputs held out from the flow (at most half of ``x_train``); their log
        densities are the null.
    steps, transforms : int
        Adam steps (mini-batches of 512) and MAF transforms of the marginal flow.

    Returns
    -------
    pvalue : (n_obs,)
        ``(1 + #{null <= log p(x_o)}) / (1 + n_null)``.
    """
    import zuko

    fit, null_x, z_obs = _split(x_train, x_obs, n_null, seed)
    fit_t = torch.as_tensor(fit, dtype=torch.float32)
    with seeded(seed):
        flow = zuko.flows.MAF(features=fit.shape[1], context=0, transforms=transforms)
        optimiser = torch.optim.Adam(flow.parameters(), lr=3e-3)
        for _ in range(steps):
            rows = torch.randint(len(fit_t), (min(512, len(fit_t)),))
            optimiser.zero_grad(set_to_none=True)
            (-flow().log_prob(fit_t[rows]).mean()).backward()
            optimiser.step()
    with torch.no_grad():
        null = flow().log_prob(torch.as_tensor(null_x, dtype=torch.float32)).numpy()
        observed = flow().log_prob(torch.as_tensor(z_obs, dtype=torch.float32)).numpy()
    return (1 + (null[None] <= observed[:, None]).sum(axis=1)) / (1 + len(null))


def detection_rate(pvalues: np.ndarray, alpha: float = 0.05) -> float:
    """Fraction of observations flagged (p-value below ``alpha``)."""
    return float((np.asarray(pvalues) < alpha).mean())
