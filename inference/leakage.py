"""Posteriors that leak out of a bounded prior: how much, and draws that still end.

An NPE density estimator is trained without knowing the prior's bounds and may put mass outside
them; sbi then rejects draws outside the support, which never ends when almost all of the mass
is outside. :func:`support_mass` measures the share inside, and :func:`truncated_draws` gives
draws for leaky rows from a bounded number of proposals.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from inference.seeds import child_seed, seeded
from simulators.prior import Prior

__all__ = ["support_mass", "truncated_draws"]


def support_mass(posterior: Any, x_t: torch.Tensor, n: int, per_call: int) -> np.ndarray:
    """Share of ``n`` raw estimator draws inside the prior's support, per row of ``x_t``.

    Parameters
    ----------
    posterior : sbi DirectPosterior
    x_t : (batch, x_dim) tensor
    n : int
    per_call : int
        Most draws (rows x n) per estimator call.

    Returns
    -------
    mass : (batch,) in ``[1 / n, 1]`` (a count of zero is raised to one)
    """
    from sbi.utils.sbiutils import within_support

    rows = max(1, per_call // n)
    fractions = [np.empty(0)]
    for index, start in enumerate(range(0, x_t.shape[0], rows)):
        with seeded(child_seed(0, index)), torch.no_grad():
            draws = posterior.posterior_estimator.sample(
                torch.Size([n]), condition=x_t[start : start + rows]
            )
            inside = within_support(posterior.prior, draws).reshape(n, -1)
        fractions.append(np.maximum(inside.sum(dim=0).numpy(), 1) / n)
    return np.concatenate(fractions)


def truncated_draws(
    posterior: Any, prior: Prior, x_t: torch.Tensor, n: int, seed: int, proposals_per_draw: int
) -> np.ndarray:
    """``(n, rows, p)`` draws for leaky rows from at most ``proposals_per_draw * n`` proposals
    per row: the in-support ones, resampled to ``n``; with none inside, the first raw draws
    moved to the nearest point of the support. Biased where the estimator leaks, which its
    ``support_leakage`` score reports."""
    from sbi.utils.sbiutils import within_support

    low = torch.as_tensor([p.support[0] for p in prior.parameters], dtype=torch.float32)
    high = torch.as_tensor([p.support[1] for p in prior.parameters], dtype=torch.float32)
    budget = min(proposals_per_draw * n, 2**20)
    rng = np.random.default_rng(child_seed(seed, 0x1EA4))
    out = np.empty((n, x_t.shape[0], prior.dim))
    for row in range(x_t.shape[0]):
        with seeded(child_seed(seed, 0x1EA4, row)), torch.no_grad():
            raw = posterior.posterior_estimator.sample(
                torch.Size([budget]), condition=x_t[row : row + 1]
            ).reshape(budget, -1)
            inside = raw[within_support(posterior.prior, raw).reshape(-1)]
        if len(inside):
            out[:, row] = inside.numpy()[rng.integers(len(inside), size=n)]
        else:
            out[:, row] = torch.clamp(raw[:n], low, high).numpy()
    return out
