"""What the robust inference methods (NNPE, RNPE, MMD-regularised NPE) share.

Their posteriors depend on their options as well as on the network, so :class:`WithOptions` is
what they digest; :func:`output_scale` gives the per-output units in which Ward et al.'s noise is
expressed (their summaries are z-scored; the noise scales are multiples of one standard deviation
of the simulated outputs); :func:`observation_digest` names the observations a method adapted to.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from pydantic import BaseModel

from inference.settings import MCMCSettings

__all__ = ["WithOptions", "observation_digest", "output_scale"]


class WithOptions(BaseModel):
    """What a robust posterior depends on besides the data: network, options, sampler."""

    network: dict[str, Any]
    options: dict[str, Any]
    mcmc: MCMCSettings | None = None


def output_scale(x: np.ndarray) -> np.ndarray:
    """Standard deviation of each output over the simulations, ``(d,)``; 1 where it is 0.

    Parameters
    ----------
    x : (n, d)
    """
    std = np.asarray(x, dtype=np.float64).std(axis=0)
    return np.where(std > 0, std, 1.0)


def observation_digest(x_obs: np.ndarray) -> str:
    """16 hexadecimal digits naming the observations ``(n_obs, d)`` (as float32 values)."""
    values = np.ascontiguousarray(np.asarray(x_obs, dtype=np.float64), dtype=np.float32)
    digest = hashlib.sha256(repr(values.shape).encode())
    digest.update(values.tobytes())
    return digest.hexdigest()[:16]
