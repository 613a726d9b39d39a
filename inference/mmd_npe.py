"""MMD-regularised NPE (Huang et al. 2023): summaries learned to be robust to misspecification.

Huang, Bharti, Souza, Acerbi and Kaski (2023) let NPE learn its summary statistics with an
embedding network ``h`` and add to NPE's loss a penalty on how far the embedded simulations lie
from the embedded observed data::

    L = E[-log q(theta | h(x))] + lambda * MMD^2({h(x_i)}, {h(y_j)}),

so ``h`` keeps only features in which the simulations can look like the observations, and an
observation the model cannot reproduce lands where the posterior network has been trained. The
observations are needed at training time (``MethodContext.x_obs``, one row or several), and the
posterior is tied to them (they are part of its fingerprint); it is amortised over ``x`` all the
same, and is saved and loaded as an :class:`~inference.npe.NPEPosterior` with its embedding.

Why a hand-written training loop. sbi's trainers have no public hook for an extra loss term: the
only way in is overriding the private ``NPE._loss`` (whose signature has changed between sbi
releases), and the penalty needs the observations embedded by the same network in each step. So
the network is built by sbi's ``posterior_nn`` with an embedding net (the estimator's ``loss``
and ``embedding_net`` are public) and trained by
:func:`~inference.flow_training.fit_network` (Adam, clipping, early stopping as sbi does). The
MMD is :func:`inference.mmd.mmd2_tensor` with the Gaussian kernel and, unless a ``bandwidth`` is
given, a median-distance bandwidth per batch, taken over the distances *between* embedded
simulations and observations (:func:`inference.mmd.cross_median_bandwidth`). The paper's median
heuristic over the pooled sample fails here at the start of training: when the observations lie
far from the simulations (the case that matters) the kernel is narrower than the gap, MMD^2 sits
at its maximum and gives no gradient; on Ward et al.'s Gaussian task at ``dgp_variance = 5`` the
penalty then never falls and the posterior stays as wrong as NPE's.

References
----------
Huang, D., Bharti, A., Souza, A., Acerbi, L. & Kaski, S. (2023). Learning robust statistics for
simulation-based inference under model misspecification. NeurIPS 36. arXiv:2305.15871.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

from inference.checkpoint import read_settings, read_training, rebuild_network
from inference.flow_training import fit_network
from inference.methods import MethodContext
from inference.mmd import cross_median_bandwidth, mmd2_tensor
from inference.npe import NPEMethod, NPEPosterior
from inference.posterior import check_pairs, check_rows
from inference.robust import WithOptions, observation_digest
from inference.seeds import child_seed, seeded
from inference.settings import MethodSettings, NPESettings
from inference.unconstrained import as_configured
from simulators.errors import ConfigError
from simulators.prior import Prior

__all__ = ["MMDNPEMethod", "MMDNPEOptions"]


class MMDNPEOptions(BaseModel):
    """Options of MMD-regularised NPE (``inference.options.mmd_npe``).

    Attributes
    ----------
    mmd_weight : float >= 0
        ``lambda``, the weight of the MMD penalty (0 is plain NPE with an embedding net). The
        paper tunes it per task; the default 10 is what worked on Ward et al.'s Gaussian task
        with 100 observations (1 and 3 left NPE's bias half corrected).
    embedding_features : int, optional
        Width of the learned summaries ``h(x)``; default the network's ``embedding_features``,
        else ``max(4, n_outputs)``.
    bandwidth : float > 0, optional
        Gaussian kernel length scale in embedding units; default the median distance between
        each batch's embedded simulations and the embedded observations.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    mmd_weight: float = Field(10.0, ge=0)
    embedding_features: PositiveInt | None = None
    bandwidth: float | None = Field(None, gt=0)


class MMDNPEMethod(NPEMethod):
    """NPE with a learned embedding whose simulations are pulled towards the observations."""

    name: ClassVar[str] = "mmd_npe"
    needs_observations: ClassVar[bool] = True
    description: ClassVar[str] = (
        "MMD-regularised NPE (Huang et al. 2023): robust learned summaries; needs the "
        "observations at training time"
    )
    options_model: ClassVar[type[BaseModel] | None] = MMDNPEOptions

    def relevant_settings(self, settings: MethodSettings) -> BaseModel:
        """The network, its training and the penalty."""
        options = self.options(settings)
        assert options is not None
        return WithOptions(network=settings.network.model_dump(), options=options.model_dump())

    def fingerprint(
        self,
        theta: np.ndarray,
        x: np.ndarray,
        prior: Prior,
        settings: MethodSettings,
        seed: int,
        context: MethodContext,
    ) -> str:
        """NPE's digest with the observations the penalty used."""
        digest = super().fingerprint(theta, x, prior, settings, seed, context)
        observed = "none" if context.x_obs is None else observation_digest(context.x_obs)
        return f"{digest}-obs{observed}"

    def train(
        self,
        theta: np.ndarray,
        x: np.ndarray,
        prior: Prior,
        settings: MethodSettings,
        *,
        seed: int,
        context: MethodContext,
    ) -> NPEPosterior:
        """Train on pairs ``theta`` ``(n, p)``, ``x`` ``(n, d)`` and ``context.x_obs``.

        Raises
        ------
        ConfigError
            If ``context.x_obs`` is missing or not ``(n_obs, d)`` and finite.
        """
        from sbi.inference import DirectPosterior

        theta_t, x_t = check_pairs(theta, x, prior)
        observed = self._observations(context, x_t.shape[1])
        options = self.options(settings)
        assert isinstance(options, MMDNPEOptions)
        features = options.embedding_features or settings.embedding_features or max(4, x_t.shape[1])
        network_settings = settings.network.model_copy(update={"embedding_features": features})
        with seeded(child_seed(seed, 4)):
            network = _builder(network_settings, prior)(theta_t, x_t)
        loss = _penalised_loss(network, theta_t, x_t, observed, options)
        training = fit_network(network, loss, len(x_t), network_settings, seed=seed)
        with seeded(seed):
            posterior = DirectPosterior(network, prior.to_torch())
        return NPEPosterior(
            posterior,
            settings=network_settings,
            prior=prior,
            x_dim=int(x_t.shape[1]),
            training=training,
            method=self.name,
        )

    def load(
        self, payload: dict[str, Any], prior: Prior, path: Path, context: MethodContext
    ) -> NPEPosterior:
        """Rebuild the network and its embedding from the file."""
        from sbi.inference import DirectPosterior

        settings = read_settings(payload, path, NPESettings)
        network = rebuild_network(_builder(settings, prior), payload, path)
        with seeded(0):
            posterior = DirectPosterior(network, prior.to_torch())
        return NPEPosterior(
            posterior,
            settings=settings,
            prior=prior,
            x_dim=int(payload["x_dim"]),
            training=read_training(payload, path),
            fingerprint=payload.get("fingerprint"),
            method=self.name,
        )

    def _observations(self, context: MethodContext, x_dim: int) -> torch.Tensor:
        if context.x_obs is None:
            raise ConfigError(
                f"inference method {self.name!r} learns summaries that match the observed data "
                "and needs them at training time; pass context=MethodContext(x_obs=...) with "
                f"the observations as rows of {x_dim} outputs"
            )
        x_obs = np.asarray(context.x_obs, dtype=np.float64)
        return check_rows(
            x_obs.reshape(-1, x_dim) if x_obs.ndim == 1 else x_obs,
            x_dim,
            "x_obs",
            f"(n_obs, {x_dim})",
        )


def _builder(settings: NPESettings, prior: Prior) -> Any:
    """sbi's posterior network with a fully connected embedding ``x -> h(x)``.

    The embedding has two hidden ReLU layers of 50 units and a *linear* output of
    ``settings.embedding_features`` (sbi's ``FCEmbedding`` ends in a ReLU, and under the MMD
    penalty its output units die one by one until the summaries no longer tell the data apart).
    With ``settings.unconstrained`` on a bounded ``prior`` it models ``T^-1(theta)``
    (:mod:`inference.unconstrained`).
    """
    from sbi.neural_nets import posterior_nn

    def builder(theta: torch.Tensor, x: torch.Tensor) -> Any:
        width = 50
        embedding = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], width),
            torch.nn.ReLU(),
            torch.nn.Linear(width, width),
            torch.nn.ReLU(),
            torch.nn.Linear(width, int(settings.embedding_features or x.shape[1])),
        )
        return posterior_nn(
            model=settings.density_estimator,
            hidden_features=settings.hidden_features,
            num_transforms=settings.num_transforms,
            embedding_net=embedding,
        )(theta, x)

    return as_configured(builder, settings.unconstrained, prior)


def _penalised_loss(
    network: Any,
    theta: torch.Tensor,
    x: torch.Tensor,
    observed: torch.Tensor,
    options: MMDNPEOptions,
) -> Any:
    """``loss(rows)``: NPE's mean negative log density plus ``lambda`` MMD^2 of the embeddings."""

    def loss(rows: torch.Tensor) -> torch.Tensor:
        value = network.loss(theta[rows], x[rows]).mean()
        if options.mmd_weight == 0:
            return value
        simulated = network.embedding_net(x[rows])
        embedded = network.embedding_net(observed)
        bandwidth = options.bandwidth or cross_median_bandwidth(
            simulated.detach(), embedded.detach()
        )
        return value + options.mmd_weight * mmd2_tensor(simulated, embedded, bandwidth)

    return loss
