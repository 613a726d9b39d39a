"""Methods that train a network with an sbi trainer and sample its potential by MCMC.

NLE learns ``q(x | theta)`` and NRE a classifier whose logit is ``log r(x, theta)``; neither can
be sampled directly, so both become a :class:`~inference.mcmc.SampledPosterior` over sbi's
potential for the trained network. :class:`NetworkMCMCMethod` holds everything they share; a
subclass names its sbi trainer, the network's role and the potential (see :mod:`inference.nle`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from inference.checkpoint import read_settings, read_training, rebuild_network
from inference.mcmc import SampledPosterior
from inference.methods import InferenceMethod, MethodContext
from inference.sbi_training import train_network
from inference.settings import MCMCSettings, MethodSettings, NetworkRole, network_builder
from inference.training import TrainingInfo
from simulators.prior import Prior

__all__ = ["NetworkMCMCMethod", "NetworkAndMCMC"]


class NetworkAndMCMC(BaseModel):
    """What a network-then-MCMC posterior depends on: its network settings and its sampler."""

    network: dict[str, Any]
    mcmc: MCMCSettings


class NetworkMCMCMethod(InferenceMethod):
    """An sbi trainer's network, sampled by sbi's MCMC.

    Attributes
    ----------
    trainer : str
        ``module:Class`` of the sbi trainer (``sbi.inference:NLE``).
    builder_keyword : str
        The trainer's keyword for its network builder.
    role : {"likelihood", "classifier"}
        Passed to :func:`~inference.settings.network_builder`.
    potential : str
        ``module:function`` of sbi's potential factory, called as
        ``factory(network, torch_prior, None)`` and returning ``(potential, transform)``.
    """

    trainer: ClassVar[str]
    builder_keyword: ClassVar[str]
    role: ClassVar[NetworkRole]
    potential: ClassVar[str]
    amortised: ClassVar[bool] = False

    def relevant_settings(self, settings: MethodSettings) -> BaseModel:
        """The network, its training and the MCMC sampler."""
        return NetworkAndMCMC(network=settings.network.model_dump(), mcmc=settings.mcmc)

    def train(
        self,
        theta: np.ndarray,
        x: np.ndarray,
        prior: Prior,
        settings: MethodSettings,
        *,
        seed: int,
        context: MethodContext,
    ) -> SampledPosterior:
        """Train the network on ``theta`` ``(n, p)`` and ``x`` ``(n, d)``; sample it by MCMC."""
        trained = train_network(
            _load(self.trainer),
            self.builder_keyword,
            network_builder(settings, self.role),
            theta,
            x,
            prior,
            settings,
            seed=seed,
            method=self.name,
            progress=context.progress,
            checkpoint=context.checkpoint,
            checkpoint_every=context.checkpoint_every,
        )
        return self._posterior(
            trained.network, prior, trained.x_dim, settings, trained.training, trained.fingerprint
        )

    def load(
        self, payload: dict[str, Any], prior: Prior, path: Path, context: MethodContext
    ) -> SampledPosterior:
        """Rebuild the network from its file and wrap it for MCMC."""
        settings = read_settings(payload, path, MethodSettings)
        network = rebuild_network(network_builder(settings, self.role), payload, path)
        return self._posterior(
            network,
            prior,
            int(payload["x_dim"]),
            settings,
            read_training(payload, path),
            payload.get("fingerprint"),
        )

    def _posterior(
        self,
        network: Any,
        prior: Prior,
        x_dim: int,
        settings: MethodSettings,
        training: TrainingInfo,
        fingerprint: str | None,
    ) -> SampledPosterior:
        network.eval()
        potential, _ = _load(self.potential)(network, prior.to_torch(), None)
        return SampledPosterior(
            method=self.name,
            potential=potential,
            prior=prior,
            x_dim=x_dim,
            settings=settings.model_dump(mode="json", exclude={"options"}),
            mcmc=settings.mcmc,
            training=training,
            state_dict=network.state_dict(),
            fingerprint=fingerprint,
        )


def _load(target: str) -> Any:
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)
