"""A small mini-batch training loop for networks that sbi's trainers cannot train.

sbi's trainers (:mod:`inference.sbi_training`) fit a conditional density with its negative log
density as the loss, and offer no public hook for anything else. Two robust methods need more:
RNPE fits an *unconditional* density ``q(x)`` of simulated outputs, and MMD-regularised NPE adds a
discrepancy term between embedded simulations and embedded observations to NPE's loss. Both train
through :func:`fit_network`: Adam on a loss of row indices, gradient norms clipped at 5, a held-out
validation share, early stopping and the best validation weights kept, as sbi does, with a seeded
split and batch order from an explicit generator.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable

import torch

from inference.seeds import check_seed, child_seed, seeded
from inference.settings import NPESettings
from inference.training import TrainingInfo
from simulators.errors import ConfigError

__all__ = ["fit_network"]

_CLIP_NORM = 5.0  # sbi's default clip_max_norm


def fit_network(
    network: torch.nn.Module,
    loss: Callable[[torch.Tensor], torch.Tensor],
    n: int,
    settings: NPESettings,
    *,
    seed: int,
) -> TrainingInfo:
    """Minimise ``loss`` over mini-batches of ``n`` rows; ``network`` ends with its best weights.

    Parameters
    ----------
    network : torch.nn.Module
        Built by the caller (under :func:`~inference.seeds.seeded`); trained in place and left in
        eval mode with the weights of the epoch of lowest validation loss.
    loss : callable
        ``loss(rows)`` with ``rows`` a ``(b,)`` long tensor of row indices returns the mean loss
        of those rows, a scalar tensor.
    n : int
        Number of rows.
    settings : NPESettings
        ``training_batch_size``, ``learning_rate``, ``validation_fraction``,
        ``stop_after_epochs`` and ``max_num_epochs``.
    seed : int
        Seeds the split, the batch order, and anything random inside ``loss``.

    Returns
    -------
    TrainingInfo

    Raises
    ------
    ConfigError
        If ``n`` leaves no training or no validation row.
    """
    n_validation = max(1, math.ceil(settings.validation_fraction * n))
    if n - n_validation < 1:
        raise ConfigError(
            f"{n} rows with validation_fraction={settings.validation_fraction} leave no "
            "training rows; pass more simulations or a smaller validation_fraction"
        )
    generator = torch.Generator().manual_seed(child_seed(check_seed(seed), 1))
    order = torch.randperm(n, generator=generator)
    train_rows, validation_rows = order[n_validation:], order[:n_validation]
    optimiser = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    best, best_state, since_best = math.inf, copy.deepcopy(network.state_dict()), 0
    history: tuple[list[float], list[float]] = ([], [])
    start, epochs = time.perf_counter(), 0
    with seeded(seed):
        while epochs < settings.max_num_epochs and since_best < settings.stop_after_epochs:
            network.train()
            history[0].append(_epoch(network, loss, train_rows, settings, optimiser, generator))
            network.eval()
            with torch.no_grad():
                validation = _mean_loss(loss, validation_rows, settings.training_batch_size)
            history[1].append(validation)
            epochs += 1
            if validation < best:
                best, best_state, since_best = validation, copy.deepcopy(network.state_dict()), 0
            else:
                since_best += 1
    network.load_state_dict(best_state)
    network.eval()
    return TrainingInfo(
        epochs=epochs,
        best_validation_loss=best,
        seconds=time.perf_counter() - start,
        n_train=n - n_validation,
        n_validation=n_validation,
        converged=since_best >= settings.stop_after_epochs,
        training_loss=tuple(history[0]),
        validation_loss=tuple(history[1]),
    )


def _epoch(
    network: torch.nn.Module,
    loss: Callable[[torch.Tensor], torch.Tensor],
    rows: torch.Tensor,
    settings: NPESettings,
    optimiser: torch.optim.Optimizer,
    generator: torch.Generator,
) -> float:
    """One pass over ``rows`` in shuffled mini-batches; the mean training loss."""
    shuffled = rows[torch.randperm(len(rows), generator=generator)]
    total = 0.0
    for start in range(0, len(shuffled), settings.training_batch_size):
        batch = shuffled[start : start + settings.training_batch_size]
        optimiser.zero_grad()
        value = loss(batch)
        value.backward()
        torch.nn.utils.clip_grad_norm_(network.parameters(), _CLIP_NORM)
        optimiser.step()
        total += float(value.detach()) * len(batch)
    return total / len(shuffled)


def _mean_loss(
    loss: Callable[[torch.Tensor], torch.Tensor], rows: torch.Tensor, batch_size: int
) -> float:
    """The loss over ``rows``, averaged over batches of ``batch_size`` weighted by their size."""
    total = sum(
        float(loss(rows[start : start + batch_size])) * len(rows[start : start + batch_size])
        for start in range(0, len(rows), batch_size)
    )
    return total / len(rows)
