"""Multi-fidelity NPE: a posterior trained on emulated data, fine-tuned on a few true runs.

Krouglova et al. (2025) pre-train NPE on many cheap low-fidelity simulations and then continue
training *the same density estimator* on a few high-fidelity ones; the low-fidelity posterior
is a starting point that the true runs correct. :func:`finetune_npe` does that to a trained
:class:`~inference.npe.NPEPosterior`: a copy of its estimator is trained further on the ``k``
true pairs by :func:`~inference.flow_training.fit_network` (Adam, clipped gradients), with
early stopping on a seeded validation split *of those k pairs* and the best validation
weights kept. The input standardisation learnt from the emulated data is kept (it is part of
the estimator's weights), so the network sees the true ``x`` on the scale it was trained on.

The result is an ordinary NPE posterior file (method ``npe``): it loads, samples and is scored
like any other. ``k = 0`` returns the pre-trained posterior unchanged.

References
----------
Krouglova, A. N., Johnson, H. R., Confavreux, B., Deistler, M. & Gonçalves, P. J. (2025).
Multifidelity simulation-based inference for computationally expensive simulators.
arXiv:2502.08416.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np

from inference.flow_training import fit_network
from inference.npe import NPEPosterior
from inference.posterior import check_pairs
from inference.seeds import seeded
from inference.settings import NPESettings
from inference.training import TrainingInfo
from simulators.errors import ConfigError

__all__ = ["MIN_FINETUNE_PAIRS", "finetune_npe"]

MIN_FINETUNE_PAIRS = 10
"""Fewest true pairs fine-tuned on: at least one validation pair must remain for early stopping."""


def finetune_npe(
    posterior: NPEPosterior,
    theta: np.ndarray,
    x: np.ndarray,
    settings: NPESettings,
    *,
    seed: int,
) -> NPEPosterior:
    """Continue training ``posterior``'s estimator on true pairs, stopping early on a split.

    Parameters
    ----------
    posterior : NPEPosterior
        Trained on emulated data; left untouched (its estimator is copied).
    theta : (k, n_params)
        Parameters of the true-simulator runs (``k = 0`` returns ``posterior`` itself).
    x : (k, n_outputs)
        Their true-simulator outputs, finite.
    settings : NPESettings
        ``learning_rate``, ``training_batch_size``, ``validation_fraction``,
        ``stop_after_epochs`` and ``max_num_epochs`` of the fine-tuning.
    seed : int
        Seeds the validation split and the batch order.

    Returns
    -------
    NPEPosterior
        Its ``training`` records the fine-tuning (epochs, losses, ``n_train`` of the k pairs).

    Raises
    ------
    ConfigError
        If ``0 < k <`` :data:`MIN_FINETUNE_PAIRS`, or the pairs do not match the posterior.
    """
    from sbi.inference import DirectPosterior

    k = int(np.shape(theta)[0])
    if k == 0:
        return posterior
    if k < MIN_FINETUNE_PAIRS:
        raise ConfigError(
            f"fine-tuning on {k} true pairs leaves too few to hold some out for early stopping; "
            f"use k = 0 or at least {MIN_FINETUNE_PAIRS}"
        )
    theta_t, x_t = check_pairs(theta, x, posterior.prior)
    if x_t.shape[1] != posterior.x_dim:
        raise ConfigError(
            f"x has {x_t.shape[1]} outputs but the posterior was trained on {posterior.x_dim}; "
            "fine-tune with pairs of the simulator it was trained for"
        )
    network = copy.deepcopy(posterior.posterior.posterior_estimator)

    def loss(rows):  # type: ignore[no-untyped-def]
        return network.loss(theta_t[rows], x_t[rows]).mean()

    training = fit_network(network, loss, k, settings, seed=seed)
    with seeded(seed):
        tuned = DirectPosterior(network, posterior.prior.to_torch())
    return NPEPosterior(
        tuned,
        settings=posterior.network_settings,
        prior=posterior.prior,
        x_dim=posterior.x_dim,
        training=_combined(posterior.training, training),
        method=posterior.method,
    )


def _combined(base: TrainingInfo, tuned: TrainingInfo) -> TrainingInfo:
    """The fine-tuning's record, with the pre-training's epochs and seconds added."""
    return replace(
        tuned,
        epochs=base.epochs + tuned.epochs,
        seconds=base.seconds + tuned.seconds,
        training_loss=base.training_loss + tuned.training_loss,
        validation_loss=base.validation_loss + tuned.validation_loss,
    )
