"""Priors with named, independent parameters.

A prior is a tuple of :class:`Parameter`, each a normal or a uniform distribution.
It samples in numpy (for campaigns, from per-sample seeds) and converts to a torch
distribution (for sbi).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, model_validator

from simulators.errors import ConfigError

__all__ = ["Parameter", "Prior"]


class Parameter(BaseModel):
    """One named parameter with an independent prior.

    ``normal`` uses ``loc`` and ``scale`` (a standard deviation);
    ``uniform`` uses ``low`` and ``high``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    distribution: Literal["normal", "uniform"]
    loc: float = 0.0
    scale: float = 1.0
    low: float = 0.0
    high: float = 1.0

    @model_validator(mode="after")
    def _check_bounds(self) -> Parameter:
        if self.distribution == "normal" and not self.scale > 0:
            raise ValueError(f"parameter {self.name!r}: scale must be > 0, got {self.scale}")
        if self.distribution == "uniform" and not self.high > self.low:
            raise ValueError(
                f"parameter {self.name!r}: uniform needs low < high, got [{self.low}, {self.high}]"
            )
        return self

    @property
    def support(self) -> tuple[float, float]:
        """The interval outside of which the density is zero."""
        if self.distribution == "uniform":
            return (self.low, self.high)
        return (-math.inf, math.inf)


class Prior(BaseModel):
    """A product of independent named parameter priors."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    parameters: tuple[Parameter, ...]

    @model_validator(mode="after")
    def _check_names(self) -> Prior:
        names = [p.name for p in self.parameters]
        if not names:
            raise ValueError("a prior needs at least one parameter")
        if len(set(names)) != len(names):
            raise ValueError(f"parameter names must be unique, got {names}")
        return self

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names, in the order of theta's columns."""
        return tuple(p.name for p in self.parameters)

    @property
    def dim(self) -> int:
        """Number of parameters."""
        return len(self.parameters)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Draw ``n`` parameter vectors.

        Returns
        -------
        theta : (n, dim) float64
        """
        columns = []
        for p in self.parameters:
            if p.distribution == "normal":
                columns.append(rng.normal(p.loc, p.scale, size=n))
            else:
                columns.append(rng.uniform(p.low, p.high, size=n))
        return np.stack(columns, axis=-1)

    def sample_from_seeds(self, seeds: np.ndarray) -> np.ndarray:
        """Draw one parameter vector per seed, so row i depends on ``seeds[i]`` only.

        Parameters
        ----------
        seeds : (n,) uint64

        Returns
        -------
        theta : (n, dim) float64
        """
        theta = np.empty((len(seeds), self.dim))
        for i, seed in enumerate(seeds):
            theta[i] = self.sample(np.random.default_rng(int(seed)), 1)[0]
        return theta

    def log_prob(self, theta: np.ndarray) -> np.ndarray:
        """Log density of each row.

        Parameters
        ----------
        theta : (n, dim)

        Returns
        -------
        log_prob : (n,) float64, ``-inf`` outside the support
        """
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        total = np.zeros(theta.shape[0])
        for j, p in enumerate(self.parameters):
            t = theta[:, j]
            if p.distribution == "normal":
                total += -0.5 * ((t - p.loc) / p.scale) ** 2 - math.log(
                    p.scale * math.sqrt(2 * math.pi)
                )
            else:
                inside = (t >= p.low) & (t <= p.high)
                total += np.where(inside, -math.log(p.high - p.low), -np.inf)
        return total

    def to_torch(self) -> Any:
        """The same prior as a torch distribution with event shape ``(dim,)`` (for sbi)."""
        import torch
        from torch.distributions import Independent, Normal, Uniform

        kinds = {p.distribution for p in self.parameters}
        if kinds == {"normal"}:
            loc = torch.tensor([p.loc for p in self.parameters], dtype=torch.float32)
            scale = torch.tensor([p.scale for p in self.parameters], dtype=torch.float32)
            return Independent(Normal(loc, scale), 1)
        if kinds == {"uniform"}:
            low = torch.tensor([p.low for p in self.parameters], dtype=torch.float32)
            high = torch.tensor([p.high for p in self.parameters], dtype=torch.float32)
            return Independent(Uniform(low, high), 1)
        raise ConfigError(
            f"a torch prior needs all parameters of one kind, got {sorted(kinds)}; "
            "use all-normal or all-uniform parameters"
        )
