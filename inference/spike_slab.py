"""The spike-and-slab summary error model of Ward et al. (2022), for NNPE and RNPE.

Each summary ``j`` of an observation is, independently, either well specified (the *spike*) or
misspecified (the *slab*)::

    z_j ~ Bernoulli(slab_prob)
    y_j | x_j, z_j ~ (1 - z_j) N(x_j, spike_scale^2) + z_j Cauchy(x_j, slab_scale)

Ward et al. use it twice. NNPE ("noisy NPE", their baseline) trains NPE on simulations with this
noise added, ``x + noise``, so the posterior network has seen summaries that are far off.
RNPE uses it as the error model ``p(y | x)`` between a density ``q(x)`` of simulated summaries
and the observation, denoises by MCMC and averages the posterior over the denoised ``x``;
:meth:`SpikeSlab.log_prob` is that likelihood with ``z`` summed out (a smooth density, so
gradient-based samplers apply). Their defaults, on z-scored summaries: ``slab_prob = 0.5``,
``spike_scale = 0.01``, ``slab_scale = 0.25``, Cauchy slab; a Laplace slab is offered as a
lighter-tailed alternative. The scales are in units of ``scale`` (pass each summary's standard
deviation over the simulations when the summaries are not z-scored).

Randomness comes only from the generator passed in (numpy ``Generator`` or ``torch.Generator``),
never from global state.

References
----------
Ward, D., Cannon, P., Beaumont, M., Fasiolo, M. & Schmon, S. M. (2022). Robust neural posterior
estimation and statistical model criticism. NeurIPS 35. arXiv:2210.06564.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["SpikeSlab"]


class SpikeSlab(BaseModel):
    """Spike-and-slab noise on summaries (Ward et al. 2022).

    Attributes
    ----------
    slab_prob : float in [0, 1]
        ``rho``, the probability that a summary is misspecified (drawn from the slab).
    spike_scale : float > 0
        Standard deviation of the Gaussian spike.
    slab_scale : float > 0
        Scale of the slab: the Cauchy's half-width at half-maximum, or the Laplace's ``b``
        (mean absolute deviation).
    slab : {"cauchy", "laplace"}
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    slab_prob: float = Field(0.5, ge=0, le=1)
    spike_scale: float = Field(0.01, gt=0)
    slab_scale: float = Field(0.25, gt=0)
    slab: Literal["cauchy", "laplace"] = "cauchy"

    def sample_numpy(
        self, shape: tuple[int, ...], rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Noise and slab indicators, drawn with ``rng``.

        Parameters
        ----------
        shape : tuple of int
            E.g. ``(n_sims, n_summaries)``.
        rng : numpy Generator

        Returns
        -------
        noise : ``shape`` float64
        in_slab : ``shape`` bool
            True where the noise came from the slab.
        """
        in_slab = rng.random(shape) < self.slab_prob
        spike = self.spike_scale * rng.standard_normal(shape)
        if self.slab == "cauchy":
            slab = self.slab_scale * rng.standard_cauchy(shape)
        else:
            slab = rng.laplace(0.0, self.slab_scale, shape)
        return np.where(in_slab, slab, spike), in_slab

    def sample_torch(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator,
        dtype: torch.dtype = torch.float32,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise and slab indicators drawn with ``generator``, on its device.

        The slab is drawn by inverting its CDF at uniforms, so only ``generator`` is used.

        Parameters
        ----------
        shape : tuple of int
        generator : torch.Generator
        dtype : torch dtype of ``noise``

        Returns
        -------
        noise : ``shape`` tensor of ``dtype``
        in_slab : ``shape`` bool tensor
        """
        device = generator.device
        options = {"generator": generator, "device": device, "dtype": torch.float64}
        in_slab = torch.rand(shape, **options) < self.slab_prob
        spike = self.spike_scale * torch.randn(shape, **options)
        # Uniforms on (0, 1) exclusive of 0, so the inverse CDFs stay finite.
        u = torch.rand(shape, **options).clamp_min(torch.finfo(torch.float64).tiny)
        if self.slab == "cauchy":
            slab = self.slab_scale * torch.tan(math.pi * (u - 0.5))
        else:
            centred = u - 0.5
            slab = -self.slab_scale * torch.sign(centred) * torch.log1p(-2 * centred.abs())
        return torch.where(in_slab, slab, spike).to(dtype), in_slab

    def add(
        self,
        x: np.ndarray | torch.Tensor,
        generator: np.random.Generator | torch.Generator,
        scale: np.ndarray | torch.Tensor | float = 1.0,
    ) -> np.ndarray | torch.Tensor:
        """``x + scale * noise``: simulations as NNPE trains on them.

        Parameters
        ----------
        x : (n, n_summaries) numpy array or tensor
        generator : numpy Generator for a numpy ``x``, torch.Generator for a tensor
        scale : float or (n_summaries,)
            Units of the noise per summary, e.g. each summary's standard deviation.

        Returns
        -------
        noisy : (n, n_summaries), of the type of ``x``
        """
        if isinstance(x, torch.Tensor):
            if not isinstance(generator, torch.Generator):
                raise TypeError("a tensor x needs a torch.Generator; pass one on x's device")
            noise, _ = self.sample_torch(tuple(x.shape), generator, x.dtype)
            return x + torch.as_tensor(scale, dtype=x.dtype, device=x.device) * noise.to(x.device)
        if not isinstance(generator, np.random.Generator):
            raise TypeError("a numpy x needs a numpy Generator, e.g. np.random.default_rng(0)")
        noise, _ = self.sample_numpy(np.shape(x), generator)
        return np.asarray(x, dtype=np.float64) + np.asarray(scale, dtype=np.float64) * noise

    def log_prob(
        self, y: torch.Tensor, x: torch.Tensor, scale: torch.Tensor | float = 1.0
    ) -> torch.Tensor:
        """``log p(y | x)`` with the indicators summed out, summed over summaries.

        ``p(y_j | x_j) = (1 - rho) N(y_j; x_j, (s spike)^2) + rho Slab(y_j; x_j, s slab)``
        with ``s = scale[j]``.

        Parameters
        ----------
        y, x : (..., n_summaries) tensors (broadcast against each other)
        scale : float or (n_summaries,)

        Returns
        -------
        log_prob : (...) tensor
        """
        s = torch.as_tensor(scale, dtype=y.dtype, device=y.device)
        error = y - x
        spike = torch.distributions.Normal(0.0, s * self.spike_scale).log_prob(error)
        if self.slab == "cauchy":
            slab = torch.distributions.Cauchy(0.0, s * self.slab_scale).log_prob(error)
        else:
            slab = torch.distributions.Laplace(0.0, s * self.slab_scale).log_prob(error)
        terms = []
        if self.slab_prob < 1:
            terms.append(spike + math.log1p(-self.slab_prob))
        if self.slab_prob > 0:
            terms.append(slab + math.log(self.slab_prob))
        return torch.logsumexp(torch.stack(terms), dim=0).sum(dim=-1)
