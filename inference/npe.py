"""Neural posterior estimation (sbi's NPE-C) and the trained posterior it returns.

:func:`train_npe` fits a conditional density estimator ``q(theta | x)`` to simulated pairs and
returns a :class:`TrainedPosterior`, which samples and evaluates ``q`` with explicit seeds and
never touches torch's global random state. A trained posterior is saved as a file of plain
Python values and tensors only, read back with ``torch.load(..., weights_only=True)``, so loading
a file can never run code that was planted in it.
"""

from __future__ import annotations

import contextlib
import io
import os
import time
from typing import Any, final

import numpy as np
import torch

from inference.checkpoint import read_checkpoint, rebuild_estimator, write_checkpoint
from inference.observations import check_observation, check_observations
from inference.seeds import check_seed, child_seed, seeded
from inference.settings import NPESettings, estimator_builder
from inference.training import LossTracker, TrainingInfo
from simulators.errors import ConfigError
from simulators.prior import Prior

__all__ = ["TrainedPosterior", "train_npe"]

# Largest number of draws (rows x samples per row) held in one sampling call.
_SAMPLES_PER_CALL = 2**20
# sbi caps (and warns about) rejection batches larger than this many draws per call.
_SBI_REJECTION_CAP = 100_000


def _rows(values: np.ndarray, width: int, name: str, expected: str) -> torch.Tensor:
    """Check a finite ``(rows, width)`` array and convert it to float32."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != width:
        raise ConfigError(
            f"{name} must have shape {expected}, got {array.shape}; "
            f"pass one row of {width} values per sample"
        )
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).any(axis=1).sum())
        raise ConfigError(
            f"{name} has {bad} rows with NaN or infinite values; drop them first "
            "(simulators.store.load_pairs returns only valid rows)"
        )
    return torch.as_tensor(array, dtype=torch.float32)


def _count(n: int, name: str) -> int:
    """Check a number of samples."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def train_npe(
    theta: np.ndarray,
    x: np.ndarray,
    prior: Prior,
    settings: NPESettings,
    *,
    seed: int,
    progress: bool = False,
    checkpoint: str | os.PathLike[str] | None = None,
    checkpoint_every: float = 1.0,
) -> TrainedPosterior:
    """Train single-round NPE on simulated pairs drawn from ``prior``.

    Parameters
    ----------
    theta : (n, n_params)
        Parameters drawn from ``prior``.
    x : (n, n_outputs)
        Simulator (or emulator) outputs, finite.
    prior : Prior
        The prior ``theta`` was drawn from; its support bounds the posterior.
    settings : NPESettings
    seed : int
        Seeds the network initialisation, the train/validation split and the batch order.
        Training runs inside ``torch.random.fork_rng`` after ``torch.manual_seed(seed)``, so
        the same inputs give the same posterior (on the same machine and thread count) and
        torch's global random state is the same afterwards as before.
    progress : bool
        Show sbi's progress bar and training summary; otherwise training prints nothing.
    checkpoint : path-like, optional
        A folder for the training state (:mod:`inference.resume`), saved after an epoch at most
        every ``checkpoint_every`` seconds and when training ends. Called again with the same
        inputs and folder, training continues from the last saved epoch (a finished state
        returns at once) and ends with the same posterior, bit for bit, as a run never
        interrupted; a state of other inputs is cleared with a warning. The caller removes the
        folder once the posterior is saved (as :func:`inference.resume.train_npe_to` does).
    checkpoint_every : float
        Least number of seconds between two saved states (0: after every epoch). A save takes
        milliseconds; one second keeps that cost small for fast epochs and redoes at most
        about a second of training after a kill.

    Returns
    -------
    TrainedPosterior

    Raises
    ------
    ConfigError
        If the arrays have the wrong shapes, hold non-finite values, or are too few to leave
        at least one training and one validation pair.
    ResultFileError
        If ``checkpoint`` holds training states of which none is readable (never retrained
        from scratch silently; delete the folder to do that).
    """
    from sbi.inference import NPE, DirectPosterior

    seed = check_seed(seed)
    x = np.asarray(x, dtype=np.float64)
    theta_t = _rows(theta, prior.dim, "theta", f"(n, {prior.dim}) for prior {prior.names}")
    x_t = _rows(x, max(x.shape[-1], 1) if x.ndim == 2 else 1, "x", "(n, n_outputs >= 1)")
    n = theta_t.shape[0]
    if x_t.shape[0] != n:
        raise ConfigError(f"theta has {n} rows but x has {x_t.shape[0]}; pass one x per theta")
    n_train = int((1 - settings.validation_fraction) * n)
    if n_train < 1 or n - n_train < 1:
        raise ConfigError(
            f"{n} pairs with validation_fraction={settings.validation_fraction} leave "
            f"{n_train} training and {n - n_train} validation pairs; pass more pairs or "
            "change validation_fraction so both are at least 1"
        )
    options = {
        "prior": prior.to_torch(),
        "density_estimator": estimator_builder(settings),
        "show_progress_bars": progress,
        "tracker": LossTracker(),  # keeps sbi from writing TensorBoard logs to ./sbi-logs
    }
    saved = None
    if checkpoint is not None:
        from inference.resume import ResumableNPE, StateFolder, training_fingerprint

        fingerprint = training_fingerprint(theta_t, x_t, prior, settings, seed)
        states = StateFolder(checkpoint)
        saved = states.load(fingerprint)
    quiet = contextlib.nullcontext() if progress else contextlib.redirect_stdout(io.StringIO())
    start = time.perf_counter()
    with seeded(seed), quiet:
        if checkpoint is None:
            trainer = NPE(**options)
        else:
            trainer = ResumableNPE(
                states=states, fingerprint=fingerprint, every=checkpoint_every, **options
            )
        trainer.append_simulations(theta_t, x_t)
        if saved is not None:
            trainer.restore(saved[1], settings, saved[0])
        if saved is not None and saved[1]["finished"]:
            estimator = trainer.network
        else:
            estimator = trainer.train(
                training_batch_size=settings.training_batch_size,
                learning_rate=settings.learning_rate,
                validation_fraction=settings.validation_fraction,
                stop_after_epochs=settings.stop_after_epochs,
                max_num_epochs=settings.max_num_epochs,
                resume_training=saved is not None,
                show_train_summary=progress,
            )
            if checkpoint is not None:
                states.save(trainer.state(epoch=trainer.epoch, finished=True))
        estimator.eval()
        posterior = DirectPosterior(estimator, prior.to_torch())
    seconds = time.perf_counter() - start
    summary = trainer.summary
    epochs = int(summary["epochs_trained"][-1])
    training = TrainingInfo(
        epochs=epochs,
        best_validation_loss=float(summary["best_validation_loss"][-1]),
        seconds=trainer.seconds if checkpoint is not None else seconds,
        n_train=n_train,
        n_validation=n - n_train,
        converged=epochs <= settings.max_num_epochs,
        training_loss=tuple(float(v) for v in summary["training_loss"]),
        validation_loss=tuple(float(v) for v in summary["validation_loss"]),
        resumed_epochs=trainer.resumed_epochs if checkpoint is not None else 0,
    )
    return TrainedPosterior(
        posterior,
        settings=settings,
        prior=prior,
        x_dim=x_t.shape[1],
        training=training,
        fingerprint=None if checkpoint is None else fingerprint,
    )


@final
class TrainedPosterior:
    """A trained NPE posterior ``q(theta | x)`` with seeded, side-effect-free sampling.

    Parameters
    ----------
    posterior : sbi DirectPosterior
        The estimator wrapped with its prior (samples outside the prior's support are rejected).
    settings : NPESettings
        The settings it was trained with.
    prior : Prior
    x_dim : int
        Number of simulator outputs it conditions on.
    training : TrainingInfo
    fingerprint : str, optional
        Digest of the inputs it was trained from (:func:`inference.resume.training_fingerprint`),
        known when it was trained with a checkpoint folder; saved with it.
    """

    def __init__(
        self,
        posterior: Any,
        *,
        settings: NPESettings,
        prior: Prior,
        x_dim: int,
        training: TrainingInfo,
        fingerprint: str | None = None,
    ) -> None:
        self.posterior = posterior
        self.settings = settings
        self.prior = prior
        self.theta_dim = prior.dim
        self.x_dim = int(x_dim)
        self.training = training
        self.fingerprint = fingerprint
        self._bounded = any(p.distribution == "uniform" for p in prior.parameters)

    def __repr__(self) -> str:
        return (
            f"TrainedPosterior({self.settings.density_estimator}, params={self.prior.names}, "
            f"x_dim={self.x_dim}, n_train={self.training.n_train}, "
            f"epochs={self.training.epochs})"
        )

    def _x_rows(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(check_observations(x, self.x_dim, "x"), dtype=torch.float32)

    def sample(self, x_o: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Draw from ``q(theta | x_o)``; the same ``seed`` gives the same draws.

        Parameters
        ----------
        x_o : (x_dim,)
        n : int
        seed : int

        Returns
        -------
        theta : (n, theta_dim) float64
        """
        x_o = check_observation(x_o, self.x_dim)
        x_t = self._x_rows(x_o[None])
        n = _count(n, "n")
        with seeded(check_seed(seed)), torch.no_grad():
            draws = self.posterior.sample(
                (n,),
                x=x_t,
                max_sampling_batch_size=min(10_000, n),
                show_progress_bars=False,
            )
        return draws.numpy().astype(np.float64)

    def sample_batched(self, x: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` samples from ``q(theta | x_b)`` for every row ``x_b``.

        Rows are processed in chunks, each seeded from ``(seed, chunk index)``, so the result
        depends on ``seed`` and on the whole batch (not only on each row).

        Parameters
        ----------
        x : (batch, x_dim)
        n : int
        seed : int

        Returns
        -------
        theta : (n, batch, theta_dim) float64
        """
        x_t = self._x_rows(x)
        seed = check_seed(seed)
        n = _count(n, "n")
        rows = max(1, min(_SBI_REJECTION_CAP, _SAMPLES_PER_CALL // n))
        pieces = []
        for index, start in enumerate(range(0, x_t.shape[0], rows)):
            chunk = x_t[start : start + rows]
            with seeded(child_seed(seed, index)), torch.no_grad():
                pieces.append(
                    self.posterior.sample_batched(
                        (n,),
                        x=chunk,
                        max_sampling_batch_size=max(1, _SBI_REJECTION_CAP // chunk.shape[0]),
                        show_progress_bars=False,
                    )
                )
        if not pieces:
            return np.empty((n, 0, self.theta_dim))
        return torch.cat(pieces, dim=1).numpy().astype(np.float64)

    def log_prob(
        self, theta: np.ndarray, x: np.ndarray, *, leakage_samples: int = 1000
    ) -> np.ndarray:
        """Pairwise log density: row i is ``log q(theta_i | x_i)``.

        ``q`` is the estimator restricted to the prior's support. For a bounded prior it is
        renormalised by its mass inside the support, estimated for each distinct ``x`` from
        ``leakage_samples`` draws with fixed seeds by :meth:`support_mass` (so the result is
        deterministic). For an unbounded prior the mass is exactly one and nothing is drawn.

        Parameters
        ----------
        theta : (batch, theta_dim)
        x : (batch, x_dim)
        leakage_samples : int

        Returns
        -------
        log_prob : (batch,) float64, ``-inf`` outside the prior's support
        """
        theta_t = _rows(theta, self.theta_dim, "theta", f"(batch, {self.theta_dim})")
        x_t = self._x_rows(x)
        if theta_t.shape[0] != x_t.shape[0]:
            raise ConfigError(
                f"theta has {theta_t.shape[0]} rows but x has {x_t.shape[0]}; "
                "log_prob is pairwise, so pass one x per theta"
            )
        values = []
        for start in range(0, theta_t.shape[0], _SBI_REJECTION_CAP):
            stop = start + _SBI_REJECTION_CAP
            with torch.no_grad():
                values.append(
                    self.posterior.log_prob_batched(
                        theta_t[None, start:stop], x_t[start:stop], norm_posterior=False
                    )[0]
                )
        log_q = torch.cat(values).double().numpy() if values else np.empty(0)
        if self._bounded:
            unique, inverse = np.unique(x_t.numpy(), axis=0, return_inverse=True)
            mass = self.support_mass(unique, leakage_samples)
            log_q = log_q - np.log(mass[inverse.reshape(-1)])
        return log_q

    def support_mass(self, x: np.ndarray, n_samples: int = 1000) -> np.ndarray:
        """Fraction of the raw estimator's mass inside the prior's support, per row of ``x``.

        One minus this is the estimator's leakage. It is estimated from ``n_samples`` draws
        per row, with fixed seeds (chunk ``k`` of rows uses ``child_seed(0, k)``); a count of
        zero draws inside is raised to one, so the result is at least ``1 / n_samples``.

        Parameters
        ----------
        x : (batch, x_dim)
        n_samples : int

        Returns
        -------
        mass : (batch,) float64 in ``[1 / n_samples, 1]``
        """
        from sbi.utils.sbiutils import within_support

        x_t = self._x_rows(x)
        n = _count(n_samples, "n_samples")
        rows = max(1, _SAMPLES_PER_CALL // n)
        fractions = [np.empty(0)]
        for index, start in enumerate(range(0, x_t.shape[0], rows)):
            with seeded(child_seed(0, index)), torch.no_grad():
                draws = self.posterior.posterior_estimator.sample(
                    torch.Size([n]), condition=x_t[start : start + rows]
                )
                inside = within_support(self.posterior.prior, draws).reshape(n, -1)
            fractions.append(np.maximum(inside.sum(dim=0).numpy(), 1) / n)
        return np.concatenate(fractions)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the posterior to ``path`` atomically, as plain values and tensors only.

        See :mod:`inference.checkpoint` for the file's contents.
        """
        import sbi

        estimator = self.posterior.posterior_estimator
        write_checkpoint(
            path,
            {
                "settings": self.settings.model_dump(),
                "prior": self.prior.model_dump(mode="json"),
                "theta_dim": self.theta_dim,
                "x_dim": self.x_dim,
                "state_dict": {
                    name: tensor.detach().cpu().clone()
                    for name, tensor in estimator.state_dict().items()
                },
                "training": self.training.to_dict(),
                **({} if self.fingerprint is None else {"fingerprint": self.fingerprint}),
                "versions": {"sbi": str(sbi.__version__), "torch": str(torch.__version__)},
            },
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], prior: Prior) -> TrainedPosterior:
        """Read a posterior written by :meth:`save`.

        Parameters
        ----------
        path : path-like
        prior : Prior
            The prior it was trained with (checked against the one stored in the file).

        Raises
        ------
        ResultFileError
            If the file is missing, is not a plain-data torch file (pickled objects are
            refused, never executed), or is not an emustudy posterior of a known format.
        ConfigError
            If ``prior`` differs from the prior the posterior was trained with.
        """
        from sbi.inference import DirectPosterior

        payload = read_checkpoint(path)
        if payload["prior"] != prior.model_dump(mode="json"):
            raise ConfigError(
                f"the posterior in {path} was trained with prior {payload['prior']}, but load "
                f"got {prior.model_dump(mode='json')}; pass the prior it was trained with"
            )
        settings, training, estimator = rebuild_estimator(payload, path)
        with seeded(0):
            posterior = DirectPosterior(estimator, prior.to_torch())
        return cls(
            posterior,
            settings=settings,
            prior=prior,
            x_dim=int(payload["x_dim"]),
            training=training,
            fingerprint=payload.get("fingerprint"),
        )
