"""One training loop for every method built on an sbi trainer (NPE, NLE, NRE), resumable.

:func:`train_network` checks the pairs, runs the sbi trainer class it is given with explicit
seeds and no files written (an in-memory tracker instead of TensorBoard), optionally saving its
whole state to a checkpoint folder as it goes (:mod:`inference.resume`), and returns the trained
network with its :class:`~inference.training.TrainingInfo`. Methods differ only in the trainer
class, the keyword under which it takes its network builder, and what they build from the
network afterwards.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from inference.posterior import check_pairs
from inference.resume import StateFolder, resumable, training_fingerprint
from inference.seeds import check_seed, seeded
from inference.settings import NPESettings
from inference.training import LossTracker, TrainingInfo
from simulators.errors import ConfigError
from simulators.prior import Prior

__all__ = ["TrainedNetwork", "train_network"]


@dataclass(frozen=True)
class TrainedNetwork:
    """What :func:`train_network` returns.

    Attributes
    ----------
    network : torch.nn.Module
        The trained estimator (in eval mode), with the best validation weights.
    training : TrainingInfo
    fingerprint : str or None
        Digest of the inputs, when trained with a checkpoint folder.
    x_dim : int
    """

    network: Any
    training: TrainingInfo
    fingerprint: str | None
    x_dim: int


def train_network(
    trainer_class: type,
    builder_keyword: str,
    builder: Any,
    theta: np.ndarray,
    x: np.ndarray,
    prior: Prior,
    settings: NPESettings,
    *,
    seed: int,
    method: str,
    progress: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: float = 1.0,
) -> TrainedNetwork:
    """Train an sbi trainer's network on simulated pairs.

    Parameters
    ----------
    trainer_class : type
        An sbi trainer (``NPE``, ``NLE``, ``NRE``).
    builder_keyword : str
        The trainer's keyword for its network builder (``density_estimator``, ``classifier``).
    builder : callable
        From :func:`~inference.settings.network_builder`.
    theta : (n, n_params)
    x : (n, n_outputs)
    prior : Prior
    settings : NPESettings
        Training settings (batch size, learning rate, early stopping, epochs).
    seed : int
        Seeds the network initialisation, the train/validation split and the batch order;
        training runs inside :func:`~inference.seeds.seeded`, so torch's global random state is
        the same afterwards as before.
    method : str
        The method's registered name (part of the checkpoint fingerprint).
    progress : bool
        Show sbi's progress bar and training summary; otherwise training prints nothing.
    checkpoint : path-like, optional
        A folder for the training state, saved after an epoch at most every
        ``checkpoint_every`` seconds and at the end; called again, training continues from
        the last saved epoch to the very network of a run never interrupted.

    Raises
    ------
    ConfigError
        If the arrays have the wrong shapes, hold non-finite values, or are too few to leave
        at least one training and one validation pair.
    ResultFileError
        If ``checkpoint`` holds training states of which none is readable.
    """
    seed = check_seed(seed)
    theta_t, x_t = check_pairs(theta, x, prior)
    n = theta_t.shape[0]
    n_train = _training_rows(n, settings.validation_fraction)
    options = {
        "prior": prior.to_torch(),
        builder_keyword: builder,
        "show_progress_bars": progress,
        "tracker": LossTracker(),  # keeps sbi from writing TensorBoard logs to ./sbi-logs
    }
    fingerprint, saved, states = None, None, None
    if checkpoint is not None:
        fingerprint = training_fingerprint(theta_t, x_t, prior, settings, seed, method)
        states = StateFolder(checkpoint)
        saved = states.load(fingerprint)
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO())
    start = time.perf_counter()
    with seeded(seed), quiet:
        if states is None:
            trainer = trainer_class(**options)
        else:
            trainer = resumable(trainer_class)(
                states=states, fingerprint=fingerprint, every=checkpoint_every, **options
            )
        trainer.append_simulations(theta_t, x_t)
        network = _train(trainer, settings, saved, states, progress)
    seconds = trainer.seconds if states is not None else time.perf_counter() - start
    training = _training_info(trainer, settings, seconds, n_train, n - n_train, states is not None)
    return TrainedNetwork(network, training, fingerprint, int(x_t.shape[1]))


def _training_rows(n: int, validation_fraction: float) -> int:
    n_train = int((1 - validation_fraction) * n)
    if n_train < 1 or n - n_train < 1:
        raise ConfigError(
            f"{n} pairs with validation_fraction={validation_fraction} leave "
            f"{n_train} training and {n - n_train} validation pairs; pass more pairs or "
            "change validation_fraction so both are at least 1"
        )
    return n_train


def _train(
    trainer: Any,
    settings: NPESettings,
    saved: tuple[Any, dict[str, Any]] | None,
    states: StateFolder | None,
    progress: bool,
) -> Any:
    """Run (or resume, or skip when finished) the trainer's ``train``; the network in eval mode."""
    if saved is not None:
        trainer.restore(saved[1], settings, saved[0])
    if saved is not None and saved[1]["finished"]:
        network = trainer.network
    else:
        network = trainer.train(
            training_batch_size=settings.training_batch_size,
            learning_rate=settings.learning_rate,
            validation_fraction=settings.validation_fraction,
            stop_after_epochs=settings.stop_after_epochs,
            max_num_epochs=settings.max_num_epochs,
            resume_training=saved is not None,
            show_train_summary=progress,
        )
        if states is not None:
            states.save(trainer.state(epoch=trainer.epoch, finished=True))
    network.eval()
    return network


def _training_info(
    trainer: Any,
    settings: NPESettings,
    seconds: float,
    n_train: int,
    n_validation: int,
    resumable_run: bool,
) -> TrainingInfo:
    summary = trainer.summary
    epochs = int(summary["epochs_trained"][-1])
    return TrainingInfo(
        epochs=epochs,
        best_validation_loss=float(summary["best_validation_loss"][-1]),
        seconds=seconds,
        n_train=n_train,
        n_validation=n_validation,
        converged=epochs <= settings.max_num_epochs,
        training_loss=tuple(float(v) for v in summary["training_loss"]),
        validation_loss=tuple(float(v) for v in summary["validation_loss"]),
        resumed_epochs=trainer.resumed_epochs if resumable_run else 0,
    )
