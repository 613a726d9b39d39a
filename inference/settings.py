"""NPE settings, and the one place that turns them into an sbi density-estimator builder.

Training and loading both build the estimator through :func:`estimator_builder`, so a saved
``state_dict`` always fits the network that loading rebuilds.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, PositiveInt

__all__ = ["NPESettings", "estimator_builder"]


class NPESettings(BaseModel):
    """Density estimator and training settings of NPE.

    Attributes
    ----------
    density_estimator : {"maf", "nsf", "mdn", "zuko_maf", "zuko_nsf"}
        Masked autoregressive flow, neural spline flow, mixture density network, or zuko's
        MAF / NSF.
    hidden_features : int
        Hidden units per layer.
    num_transforms : int
        Flow transforms (ignored by ``mdn``).
    training_batch_size, learning_rate, validation_fraction, stop_after_epochs, max_num_epochs
        Passed to sbi's ``train``: Adam's step size, the held-out fraction used for early
        stopping, the epochs without improvement before stopping, and the epoch budget.
    embedding_features : int, optional
        When set, ``x`` first passes through a trained fully connected embedding network (two
        hidden layers of 50 units) to this many features: for high-dimensional outputs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    density_estimator: Literal["maf", "nsf", "mdn", "zuko_maf", "zuko_nsf"] = "maf"
    hidden_features: PositiveInt = 50
    num_transforms: PositiveInt = 5
    training_batch_size: PositiveInt = 256
    learning_rate: float = Field(default=5e-4, gt=0)
    validation_fraction: float = Field(default=0.1, gt=0, lt=1)
    stop_after_epochs: PositiveInt = 20
    max_num_epochs: PositiveInt = 500
    embedding_features: PositiveInt | None = None


def estimator_builder(settings: NPESettings) -> Any:
    """sbi's builder for the estimator ``settings`` describe.

    Returns
    -------
    builder : callable
        ``builder(theta, x)`` with ``theta`` ``(batch, n_params)`` and ``x``
        ``(batch, n_outputs)`` float32 tensors returns an untrained conditional density
        estimator; the batch sets its shapes and initial z-scoring, which a loaded
        ``state_dict`` then overwrites.
    """
    from sbi.neural_nets import posterior_nn
    from sbi.neural_nets.embedding_nets import FCEmbedding

    def builder(theta: Any, x: Any) -> Any:
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

    return builder
