"""Posteriors sampled by sbi's MCMC: from a trained likelihood (NLE), a ratio (NRE), or any
likelihood function q(x | theta) such as a trained emulator.

:class:`SampledPosterior` wraps one of sbi's potentials (``log q(x | theta) + log p(theta)`` up to
a constant) and draws with sbi's ``MCMCPosterior`` — vectorised slice sampling or Pyro's NUTS in
the prior's unconstrained space, chains started by sampling-importance-resampling from the prior —
always inside :func:`~inference.seeds.seeded`, so the same seed gives the same draws and no one
else's random stream moves. Its normalising constant is unknown: ``normalised`` is False and
:meth:`SampledPosterior.log_prob` raises, while ``log_prob_unnormalised`` ranks draws at one ``x``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any, final

import numpy as np
import torch

from inference.checkpoint import write_checkpoint
from inference.observations import check_observation, check_observations
from inference.posterior import check_count, check_rows
from inference.seeds import check_seed, child_seed, seeded
from inference.settings import MCMCSettings
from inference.training import TrainingInfo
from simulators.errors import ConfigError
from simulators.prior import Prior

__all__ = ["LikelihoodPotential", "SampledPosterior"]

# Chains sampled in one vectorised call (observations x chains per observation).
_CHAINS_PER_CALL = 4096
_DRAWS_PER_CHAIN = 25


def _potential_base() -> type:
    from sbi.inference.potentials.base_potential import BasePotential

    return BasePotential


class LikelihoodPotential:
    """sbi potential ``log q(x_o | theta) + log p(theta)`` of a numpy likelihood function.

    Built by :meth:`create` (a subclass of sbi's ``BasePotential`` made on first use, so that
    importing this module does not import sbi).

    Parameters
    ----------
    log_likelihood : callable
        ``log_likelihood(theta (n, p), x (n, d)) -> (n,)`` in numpy, pairwise.
    prior : torch distribution
    """

    @staticmethod
    def create(log_likelihood: Callable[[np.ndarray, np.ndarray], np.ndarray], prior: Any) -> Any:
        """The potential object (see the class docstring)."""
        base = _potential_base()

        class _Potential(base):  # type: ignore[misc, valid-type]
            def __init__(self) -> None:
                super().__init__(prior, None, "cpu")

            def __call__(self, theta: torch.Tensor, track_gradients: bool = True) -> torch.Tensor:
                x = self.x_o
                if x.shape[0] != theta.shape[0]:  # one observation for every chain
                    x = x.expand(theta.shape[0], -1)
                values = log_likelihood(
                    theta.detach().double().numpy(), x.detach().double().numpy()
                )
                values = torch.as_tensor(np.asarray(values, dtype=np.float64))
                values = torch.where(torch.isfinite(values), values, -torch.inf)
                return values.to(theta.dtype) + self.prior.log_prob(theta)

        return _Potential()


@final
class SampledPosterior:
    """A posterior sampled by MCMC on a potential (a :class:`~inference.posterior.Posterior`).

    Parameters
    ----------
    method : str
    potential : sbi BasePotential
        ``log q(x | theta) + log p(theta)``; ``set_x`` is called before each use.
    prior : Prior
    x_dim : int
    settings : dict
        The method's settings (``mcmc`` among them), JSON-serialisable.
    mcmc : MCMCSettings
    training : TrainingInfo
    state_dict : dict, optional
        The trained network's tensors (saved with the posterior); empty when nothing trained.
    extra : dict, optional
        Plain values saved with the posterior (e.g. which likelihood it samples).
    fingerprint : str, optional
    """

    normalised = False

    def __init__(
        self,
        *,
        method: str,
        potential: Any,
        prior: Prior,
        x_dim: int,
        settings: dict[str, Any],
        mcmc: MCMCSettings,
        training: TrainingInfo,
        state_dict: dict[str, torch.Tensor] | None = None,
        extra: dict[str, Any] | None = None,
        fingerprint: str | None = None,
    ) -> None:
        from sbi.inference import MCMCPosterior
        from sbi.utils import mcmc_transform

        self.method = method
        self.prior = prior
        self.x_dim = int(x_dim)
        self.settings = settings
        self.mcmc = mcmc
        self.training = training
        self.state_dict = state_dict or {}
        self.extra = extra or {}
        self.fingerprint = fingerprint
        self._potential = potential
        torch_prior = prior.to_torch()
        with seeded(0):
            self._sampler = MCMCPosterior(
                potential,
                proposal=torch_prior,
                theta_transform=mcmc_transform(torch_prior),
                method=mcmc.sampler,
                thin=mcmc.thin,
                warmup_steps=mcmc.warmup,
                num_chains=mcmc.chains,
                init_strategy="resample",
                init_strategy_parameters={"num_candidate_samples": mcmc.init_candidates},
            )

    @property
    def theta_dim(self) -> int:
        """Number of parameters."""
        return self.prior.dim

    def __repr__(self) -> str:
        return (
            f"SampledPosterior({self.method}, params={self.prior.names}, x_dim={self.x_dim}, "
            f"sampler={self.mcmc.sampler}, chains={self.mcmc.chains})"
        )

    def sample(self, x_o: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Draw ``(n, theta_dim)`` from the posterior at ``x_o`` ``(x_dim,)`` by MCMC."""
        x_o = check_observation(x_o, self.x_dim)
        n = check_count(n, "n")
        x_t = torch.as_tensor(x_o[None], dtype=torch.float32)
        with seeded(check_seed(seed)), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            draws = self._sampler.sample((n,), x=x_t, show_progress_bars=False)
        return draws.detach().numpy().astype(np.float64)

    def sample_batched(self, x: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` samples at every row of ``x`` ``(batch, x_dim)``: ``(n, batch, theta_dim)``.

        Each row gets ``min(mcmc.chains, n // 25)`` chains (at least one).

        Rows are sampled in groups whose chains fit one vectorised call, each group seeded from
        ``(seed, group index)``.
        """
        x = check_observations(x, self.x_dim, "x")
        n = check_count(n, "n")
        seed = check_seed(seed)
        # at least _DRAWS_PER_CHAIN draws per chain: for a few hundred draws at each of many
        # held-out pairs, fewer chains cost fewer warm-ups (the bulk of the work)
        chains = max(1, min(self.mcmc.chains, n // _DRAWS_PER_CHAIN))
        rows = max(1, _CHAINS_PER_CALL // chains)
        pieces = []
        for index, start in enumerate(range(0, len(x), rows)):
            x_t = torch.as_tensor(x[start : start + rows], dtype=torch.float32)
            with seeded(child_seed(seed, index)), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pieces.append(
                    self._sampler.sample_batched(
                        (n,), x=x_t, num_chains=chains, show_progress_bars=False
                    ).detach()
                )
        if not pieces:
            return np.empty((n, 0, self.theta_dim))
        return torch.cat(pieces, dim=1).numpy().astype(np.float64)

    def log_prob_unnormalised(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Pairwise ``log q(x_i | theta_i) + log p(theta_i)``: theta ``(b, p)``, x ``(b, d)``."""
        theta_t = check_rows(theta, self.theta_dim, "theta", f"(batch, {self.theta_dim})")
        x_t = torch.as_tensor(check_observations(x, self.x_dim, "x"), dtype=torch.float32)
        if len(theta_t) != len(x_t):
            raise ConfigError(
                f"theta has {len(theta_t)} rows but x has {len(x_t)}; pass one x per theta"
            )
        self._potential.set_x(x_t, x_is_iid=False)
        with torch.no_grad():
            values = self._potential(theta_t, track_gradients=False)
        return values.reshape(-1).double().numpy()  # sbi's NLE potential returns (1, b)

    def log_prob(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Not available: the normalising constant of an MCMC posterior is unknown.

        Raises
        ------
        ConfigError
            Always; use :meth:`log_prob_unnormalised` to rank draws at one ``x``.
        """
        raise ConfigError(
            f"a {self.method} posterior is sampled by MCMC and has no normalised density; "
            "scores that need one (NLTP) are left out for it, and log_prob_unnormalised ranks "
            "draws at one x"
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the posterior to ``path`` atomically, as plain values and tensors only."""
        import sbi

        write_checkpoint(
            path,
            {
                "method": self.method,
                "settings": self.settings,
                "prior": self.prior.model_dump(mode="json"),
                "theta_dim": self.theta_dim,
                "x_dim": self.x_dim,
                "state_dict": {k: v.detach().cpu().clone() for k, v in self.state_dict.items()},
                "training": self.training.to_dict(),
                "extra": self.extra,
                **({} if self.fingerprint is None else {"fingerprint": self.fingerprint}),
                "versions": {"sbi": str(sbi.__version__), "torch": str(torch.__version__)},
            },
        )
