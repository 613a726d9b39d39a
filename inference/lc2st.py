"""Local C2ST (Linhart et al. 2023): is the posterior valid *at this observation*?

A classifier learns to tell pairs ``(theta_i, x_i)`` of the true joint (label 1) from pairs
``(theta'_i, x_i)`` with ``theta'_i ~ q(. | x_i)`` (label 0), on held-out true-simulator pairs.
If ``q`` is exact at ``x_o``, the classifier's probability ``d(theta, x_o)`` is 0.5 for every
``theta``; the statistic is ``mean over theta ~ q(. | x_o) of (d(theta, x_o) - 0.5)^2``. Its null
distribution comes from classifiers trained on the same data with shuffled labels. This is the
normalising-flow-free version of the paper; the observed classifier and all null classifiers are
trained as one batched network (:func:`inference.c2st.fit_classifiers`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inference.c2st import fit_classifiers
from inference.seeds import check_seed
from simulators.errors import ConfigError

__all__ = ["LC2STResult", "lc2st"]


@dataclass(frozen=True)
class LC2STResult:
    """Statistic, null statistics and p-value at each observation.

    Attributes
    ----------
    statistic : (n_obs,)
    null : (n_null, n_obs)
    pvalue : (n_obs,)
        ``(1 + #{null >= statistic}) / (1 + n_null)``.
    """

    statistic: np.ndarray
    null: np.ndarray
    pvalue: np.ndarray


def lc2st(
    theta: np.ndarray,
    x: np.ndarray,
    theta_q: np.ndarray,
    x_obs: np.ndarray,
    draws_obs: np.ndarray,
    seed: int,
    *,
    n_null: int = 30,
) -> LC2STResult:
    """Run L-C2ST at each observation.

    Parameters
    ----------
    theta : (N, p)
        True parameters of held-out true-simulator pairs.
    x : (N, d)
        Their simulated outputs.
    theta_q : (N, p)
        One draw from ``q(. | x_i)`` per pair.
    x_obs : (n_obs, d)
    draws_obs : (S, n_obs, p)
        Draws from ``q(. | x_o)`` at each observation.
    seed : int
    n_null : int
        Label-shuffled classifiers for the null distribution.

    Returns
    -------
    LC2STResult
    """
    theta, x, theta_q = (np.asarray(v, dtype=np.float64) for v in (theta, x, theta_q))
    x_obs, draws_obs = np.asarray(x_obs, dtype=np.float64), np.asarray(draws_obs, np.float64)
    n, p = theta.shape
    if (
        theta_q.shape != theta.shape
        or x.ndim != 2
        or len(x) != n
        or x_obs.ndim != 2
        or x_obs.shape[1] != x.shape[1]
        or draws_obs.shape[1:] != (len(x_obs), p)
        or n < 20
    ):
        raise ConfigError(
            f"lc2st needs theta, theta_q (N, p) with N >= 20, x (N, d), x_obs (n_obs, d) and "
            f"draws_obs (S, n_obs, p); got {theta.shape}, {theta_q.shape}, {x.shape}, "
            f"{x_obs.shape} and {draws_obs.shape}"
        )
    generator = torch.Generator().manual_seed(check_seed(seed))
    joint = np.concatenate([np.concatenate([theta, x], 1), np.concatenate([theta_q, x], 1)])
    mean, std = joint.mean(axis=0), joint.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    inputs = torch.as_tensor((joint - mean) / std, dtype=torch.float32)
    labels = torch.cat([torch.ones(n), torch.zeros(n)])
    k = 1 + n_null
    stacked_labels = torch.stack(
        [labels] + [labels[torch.randperm(2 * n, generator=generator)] for _ in range(n_null)]
    )
    model = fit_classifiers(inputs.expand(k, -1, -1).contiguous(), stacked_labels, generator)
    s = draws_obs.shape[0]
    evaluation = np.concatenate(
        [draws_obs, np.broadcast_to(x_obs[None], (s, *x_obs.shape))], axis=-1
    ).reshape(-1, joint.shape[1])
    eval_t = torch.as_tensor((evaluation - mean) / std, dtype=torch.float32)
    device = next(model.parameters()).device
    with torch.no_grad():
        probability = torch.sigmoid(model(eval_t.expand(k, -1, -1).contiguous().to(device)))
    probability = probability.cpu().numpy().reshape(k, s, len(x_obs))
    statistics = ((probability - 0.5) ** 2).mean(axis=1)  # (k, n_obs)
    observed, null = statistics[0], statistics[1:]
    pvalue = (1 + (null >= observed[None]).sum(axis=0)) / (1 + n_null)
    return LC2STResult(statistic=observed, null=null, pvalue=pvalue)
