"""Settings of the inference methods, and the one place that turns them into sbi networks.

Training and loading both build networks through :func:`network_builder`, so a saved
``state_dict`` always fits the network that loading rebuilds.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_serializer

from simulators.prior import Prior

__all__ = ["MCMCSettings", "MethodSettings", "NPESettings", "estimator_builder", "network_builder"]

NetworkRole = Literal["posterior", "likelihood", "classifier"]


class NPESettings(BaseModel):
    """The neural network of a method and how it is trained (sbi's ``train`` arguments).

    Attributes
    ----------
    density_estimator : {"maf", "nsf", "mdn", "zuko_maf", "zuko_nsf"}
        Masked autoregressive flow, neural spline flow, mixture density network, or zuko's
        MAF / NSF: the conditional density of NPE (over theta) and NLE (over x).
    classifier : {"resnet", "mlp", "linear"}
        The classifier of NRE.
    hidden_features : int
        Hidden units per layer.
    num_transforms : int
        Flow transforms (ignored by ``mdn`` and classifiers).
    training_batch_size, learning_rate, validation_fraction, stop_after_epochs, max_num_epochs
        Passed to sbi's ``train``: Adam's step size, the held-out fraction used for early
        stopping, the epochs without improvement before stopping, and the epoch budget.
    embedding_features : int, optional
        When set, ``x`` first passes through a trained fully connected embedding network (two
        hidden layers of 50 units) to this many features: for high-dimensional outputs (NPE).
    unconstrained : bool
        Train the posterior density (NPE and its variants) on ``z = T^-1(theta)``, where ``T``
        maps R^d onto a bounded prior's support (:mod:`inference.unconstrained`), so no mass
        leaks out of the prior and sampling never rejects. Off by default: it changes what a
        study trains, so posteriors and scores of existing studies stay valid; a setting left
        off is not written out, so their config digests do not change either. Ignored for an
        unbounded (all-normal) prior and by NLE and NRE.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    density_estimator: Literal["maf", "nsf", "mdn", "zuko_maf", "zuko_nsf"] = "nsf"
    classifier: Literal["resnet", "mlp", "linear"] = "resnet"
    hidden_features: PositiveInt = 50
    num_transforms: PositiveInt = 5
    training_batch_size: PositiveInt = 256
    learning_rate: float = Field(default=5e-4, gt=0)
    validation_fraction: float = Field(default=0.1, gt=0, lt=1)
    stop_after_epochs: PositiveInt = 20
    max_num_epochs: PositiveInt = 500
    embedding_features: PositiveInt | None = None
    unconstrained: bool = False

    @model_serializer(mode="wrap")
    def _omit_default_unconstrained(self, handler: Any) -> dict[str, Any]:
        """Leave ``unconstrained: false`` out, so digests of settings written before it existed
        (config hashes, training fingerprints) are unchanged."""
        dumped = handler(self)
        if not self.unconstrained:
            dumped.pop("unconstrained", None)
        return dumped

    @property
    def network(self) -> NPESettings:
        """Only the network and training fields (drops what subclasses add)."""
        return NPESettings(**self.model_dump(include=set(NPESettings.model_fields)))


class MCMCSettings(BaseModel):
    """How methods without a direct sampler (NLE, NRE, a likelihood) draw: sbi's MCMC.

    Attributes
    ----------
    sampler : {"slice_np_vectorized", "nuts_pyro", "hmc_pyro"}
        sbi's vectorised slice sampler, or Pyro's NUTS / HMC.
    chains : int
        Chains per observation, started by sampling-importance-resampling from the prior
        (``init_strategy="resample"``), so every mode gets chains.
    warmup : int
        Steps discarded at the start of each chain.
    thin : int
        Keep every ``thin``-th step.
    init_candidates : int
        Prior draws each chain's start is resampled from (sbi's default, 10,000, spent most of
        the time of scoring NLE on 50 held-out pairs: 10 million network evaluations).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    sampler: Literal["slice_np_vectorized", "nuts_pyro", "hmc_pyro"] = "slice_np_vectorized"
    chains: PositiveInt = 20
    warmup: PositiveInt = 200
    thin: PositiveInt = 1
    init_candidates: PositiveInt = 1000


class MethodSettings(NPESettings):
    """Everything one inference method needs: its network, MCMC, and its own options.

    Attributes
    ----------
    mcmc : MCMCSettings
    options : dict
        Method-specific settings by method name (e.g. ``{"nnpe": {"slab_scale": 0.25}}``),
        validated by that method's ``options_model`` when the config loads.
    """

    mcmc: MCMCSettings = MCMCSettings()
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)


def network_builder(
    settings: NPESettings, role: NetworkRole = "posterior", prior: Prior | None = None
) -> Any:
    """sbi's builder for the network ``settings`` describe, in one of three roles.

    Parameters
    ----------
    settings : NPESettings
    role : {"posterior", "likelihood", "classifier"}
        ``q(theta | x)`` (NPE), ``q(x | theta)`` (NLE) or a classifier of ``(theta, x)`` pairs
        (NRE).
    prior : Prior, optional
        Needed for a posterior with ``settings.unconstrained`` on a bounded prior: the network
        is then an :class:`~inference.unconstrained.UnconstrainedEstimator` over its support.

    Returns
    -------
    builder : callable
        ``builder(theta, x)`` with ``theta`` ``(batch, n_params)`` and ``x``
        ``(batch, n_outputs)`` float32 tensors returns an untrained network; the batch sets its
        shapes and initial z-scoring, which a loaded ``state_dict`` then overwrites.
    """
    from sbi.neural_nets import classifier_nn, likelihood_nn, posterior_nn
    from sbi.neural_nets.embedding_nets import FCEmbedding

    def builder(theta: Any, x: Any) -> Any:
        if role == "likelihood":
            return likelihood_nn(
                model=settings.density_estimator,
                hidden_features=settings.hidden_features,
                num_transforms=settings.num_transforms,
            )(theta, x)
        if role == "classifier":
            return classifier_nn(
                model=settings.classifier, hidden_features=settings.hidden_features
            )(theta, x)
        # the embedding's input size is only known from the batch
        embedding = (
            torch.nn.Identity()
            if settings.embedding_features is None
            else FCEmbedding(x.shape[1], settings.embedding_features)
        )
        return posterior_nn(
            model=settings.density_estimator,
            hidden_features=settings.hidden_features,
            num_transforms=settings.num_transforms,
            embedding_net=embedding,
        )(theta, x)

    if role == "posterior":
        from inference.unconstrained import as_configured

        return as_configured(builder, settings.unconstrained, prior)
    return builder


def estimator_builder(settings: NPESettings) -> Any:
    """The posterior-density builder of NPE (``network_builder(settings, "posterior")``)."""
    return network_builder(settings, "posterior")
