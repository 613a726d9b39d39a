"""Neural posterior estimation (sbi's NPE-C) and the amortised posterior it returns.

:func:`train_npe` fits a conditional density estimator ``q(theta | x)`` to simulated pairs and
returns an :class:`NPEPosterior`, which samples and evaluates ``q`` with explicit seeds and never
touches torch's global random state. It is saved as a file of plain values and tensors only
(:mod:`inference.checkpoint`), so loading a file can never run code planted in it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar, final

import numpy as np
import torch

from inference.checkpoint import read_settings, read_training, rebuild_network, write_checkpoint
from inference.leakage import support_mass, truncated_draws
from inference.methods import InferenceMethod, MethodContext
from inference.observations import check_observation, check_observations
from inference.posterior import check_count, check_rows
from inference.sbi_training import train_network
from inference.seeds import check_seed, child_seed, seeded
from inference.settings import MethodSettings, NPESettings, network_builder
from inference.training import TrainingInfo
from simulators.errors import ConfigError
from simulators.prior import Prior

__all__ = ["MAX_PROPOSALS_PER_DRAW", "NPEMethod", "NPEPosterior", "train_npe"]

# Largest number of draws (rows x samples per row) held in one sampling call.
_SAMPLES_PER_CALL = 2**20
MAX_PROPOSALS_PER_DRAW = 100
"""Rejection sampling at the prior's support stops being used below this inverse acceptance."""
# sbi caps (and warns about) rejection batches larger than this many draws per call.
_SBI_REJECTION_CAP = 100_000


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
    method: str = "npe",
    builder: Any = None,
) -> NPEPosterior:
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
        Seeds the network initialisation, the train/validation split and the batch order; the
        same inputs give the same posterior (on the same machine and thread count).
    progress : bool
        Show sbi's progress bar and training summary.
    checkpoint : path-like, optional
        A folder for resumable training state (:func:`inference.sbi_training.train_network`).
    checkpoint_every : float
        Least number of seconds between two saved states.
    method : str
        The registered method name recorded in the posterior (``"npe"``, or a variant such as
        ``"nnpe"`` that trains NPE on transformed pairs), so its file loads with that method.
    builder : callable, optional
        The network builder; default ``network_builder(settings, "posterior", prior)``. A variant
        passes its own to fix the input standardisation (NNPE takes it from the clean ``x``).

    Returns
    -------
    NPEPosterior

    Raises
    ------
    ConfigError
        If the arrays have the wrong shapes, hold non-finite values, or are too few.
    ResultFileError
        If ``checkpoint`` holds training states of which none is readable.
    """
    from sbi.inference import NPE, DirectPosterior

    network_settings = settings.network
    trained = train_network(
        NPE,
        "density_estimator",
        builder or network_builder(network_settings, "posterior", prior),
        theta,
        x,
        prior,
        network_settings,
        seed=seed,
        method=method,
        progress=progress,
        checkpoint=checkpoint,
        checkpoint_every=checkpoint_every,
    )
    with seeded(check_seed(seed)):
        posterior = DirectPosterior(trained.network, prior.to_torch())
    return NPEPosterior(
        posterior,
        settings=network_settings,
        prior=prior,
        x_dim=trained.x_dim,
        training=trained.training,
        fingerprint=trained.fingerprint,
        method=method,
    )


@final
class NPEPosterior:
    """An NPE posterior ``q(theta | x)`` with seeded, side-effect-free sampling.

    Satisfies :class:`~inference.posterior.Posterior`.

    Parameters
    ----------
    posterior : sbi DirectPosterior
        The estimator wrapped with its prior (samples outside the prior's support are rejected).
        An :class:`~inference.unconstrained.UnconstrainedEstimator` (``unconstrained: true``)
        has all its mass inside the support: nothing is rejected, nothing renormalised.
    settings : NPESettings
    prior : Prior
    x_dim : int
    training : TrainingInfo
    fingerprint : str, optional
        Digest of the inputs it was trained from; saved with it.
    method : str
        The registered method that trained it (``"npe"``, ``"nnpe"``, ``"mmd_npe"``): saved in
        its file, so :func:`inference.load_posterior` rebuilds it with that method.
    """

    normalised = True

    def __init__(
        self,
        posterior: Any,
        *,
        settings: NPESettings,
        prior: Prior,
        x_dim: int,
        training: TrainingInfo,
        fingerprint: str | None = None,
        method: str = "npe",
    ) -> None:
        self.method = method
        self.posterior = posterior
        self.network_settings = settings
        self.settings: dict[str, Any] = settings.model_dump()
        self.prior = prior
        self.x_dim = int(x_dim)
        self.training = training
        self.fingerprint = fingerprint
        from inference.unconstrained import UnconstrainedEstimator  # imports sbi

        self.unconstrained = isinstance(posterior.posterior_estimator, UnconstrainedEstimator)
        bounded = any(p.distribution == "uniform" for p in prior.parameters)
        self._bounded = bounded and not self.unconstrained  # whether its mass can leak

    @property
    def theta_dim(self) -> int:
        """Number of parameters."""
        return self.prior.dim

    def __repr__(self) -> str:
        return (
            f"NPEPosterior({self.method}, {self.network_settings.density_estimator}, "
            f"params={self.prior.names}, "
            f"x_dim={self.x_dim}, n_train={self.training.n_train}, "
            f"epochs={self.training.epochs})"
        )

    def _x_rows(self, x: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(check_observations(x, self.x_dim, "x"), dtype=torch.float32)

    def sample(self, x_o: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Draw ``(n, theta_dim)`` from ``q(theta | x_o)``, ``x_o`` ``(x_dim,)``; the same
        ``seed`` gives the same draws."""
        x_o = check_observation(x_o, self.x_dim)
        x_t = self._x_rows(x_o[None])
        n = check_count(n, "n")
        with seeded(check_seed(seed)), torch.no_grad():
            draws = self.posterior.sample(
                (n,), x=x_t, max_sampling_batch_size=min(10_000, n), show_progress_bars=False
            )
        return draws.numpy().astype(np.float64)

    def sample_batched(self, x: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Draw ``n`` samples from ``q(theta | x_b)`` for every row ``x_b``, in bounded time.

        Rows are processed in chunks, each seeded from ``(seed, chunk index)``, so the result
        depends on ``seed`` and on the whole batch (not only on each row). Draws outside a
        bounded prior's support are rejected; a row whose estimator puts less than
        ``1 / MAX_PROPOSALS_PER_DRAW`` of its mass inside (a leaky posterior) would stall
        rejection, so it gets :meth:`_truncated` draws instead, and its leakage is scored
        (``support_leakage``).

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
        n = check_count(n, "n")
        if self._bounded and x_t.shape[0]:
            leaky = self.support_mass(x) < 1 / MAX_PROPOSALS_PER_DRAW
            if leaky.any():
                draws = np.empty((n, x_t.shape[0], self.theta_dim))
                draws[:, ~leaky] = self.sample_batched(x[~leaky], n, seed)
                draws[:, leaky] = self._truncated(x_t[torch.as_tensor(leaky)], n, seed)
                return draws
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

    def _truncated(self, x_t: torch.Tensor, n: int, seed: int) -> np.ndarray:
        return truncated_draws(self.posterior, self.prior, x_t, n, seed, MAX_PROPOSALS_PER_DRAW)

    def _pairs(self, theta: np.ndarray, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        theta_t = check_rows(theta, self.theta_dim, "theta", f"(batch, {self.theta_dim})")
        x_t = self._x_rows(x)
        if theta_t.shape[0] != x_t.shape[0]:
            raise ConfigError(
                f"theta has {theta_t.shape[0]} rows but x has {x_t.shape[0]}; "
                "log_prob is pairwise, so pass one x per theta"
            )
        return theta_t, x_t

    def log_prob_unnormalised(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Pairwise log density of the raw estimator (not renormalised to the prior's support).

        Parameters
        ----------
        theta : (batch, theta_dim)
        x : (batch, x_dim)

        Returns
        -------
        log_q : (batch,) float64
        """
        theta_t, x_t = self._pairs(theta, x)
        values = []
        for start in range(0, theta_t.shape[0], _SBI_REJECTION_CAP):
            stop = start + _SBI_REJECTION_CAP
            with torch.no_grad():
                values.append(
                    self.posterior.log_prob_batched(
                        theta_t[None, start:stop], x_t[start:stop], norm_posterior=False
                    )[0]
                )
        return torch.cat(values).double().numpy() if values else np.empty(0)

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
        log_q = self.log_prob_unnormalised(theta, x)
        if self._bounded:
            x_t = self._x_rows(x)
            unique, inverse = np.unique(x_t.numpy(), axis=0, return_inverse=True)
            mass = self.support_mass(unique, leakage_samples)
            log_q = log_q - np.log(mass[inverse.reshape(-1)])
        return log_q

    def support_mass(self, x: np.ndarray, n_samples: int = 1000) -> np.ndarray:
        """Fraction of the raw estimator's mass inside the prior's support, per row of ``x``.

        One minus this is the estimator's leakage, estimated from ``n_samples`` draws per row
        ``(batch, x_dim)`` with fixed seeds; returns ``(batch,)`` in ``[1 / n_samples, 1]``
        (see :func:`inference.leakage.support_mass`). Exactly one for an unconstrained posterior
        or an unbounded prior, without drawing.
        """
        n = check_count(n_samples, "n_samples")
        x_t = self._x_rows(x)
        if not self._bounded:
            return np.ones(x_t.shape[0])
        return support_mass(self.posterior, x_t, n, _SAMPLES_PER_CALL)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the posterior to ``path`` atomically, as plain values and tensors only."""
        import sbi

        estimator = self.posterior.posterior_estimator
        write_checkpoint(
            path,
            {
                "method": self.method,
                "settings": self.settings,
                "prior": self.prior.model_dump(mode="json"),
                "theta_dim": self.theta_dim,
                "x_dim": self.x_dim,
                "state_dict": {
                    name: tensor.detach().cpu().clone()
                    for name, tensor in estimator.state_dict().items()
                },
                "training": self.training.to_dict(),
                "extra": {},
                **({} if self.fingerprint is None else {"fingerprint": self.fingerprint}),
                "versions": {"sbi": str(sbi.__version__), "torch": str(torch.__version__)},
            },
        )


class NPEMethod(InferenceMethod):
    """Single-round NPE (sbi's NPE-C): an amortised density ``q(theta | x)``."""

    name: ClassVar[str] = "npe"
    description: ClassVar[str] = "neural posterior estimation (sbi NPE-C), amortised"

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
        """Train NPE (see :func:`train_npe`)."""
        return train_npe(
            theta,
            x,
            prior,
            settings,
            seed=seed,
            progress=context.progress,
            checkpoint=context.checkpoint,
            checkpoint_every=context.checkpoint_every,
        )

    def load(
        self, payload: dict[str, Any], prior: Prior, path: Path, context: MethodContext
    ) -> NPEPosterior:
        """Rebuild an NPE posterior from its file."""
        from sbi.inference import DirectPosterior

        settings, training = read_settings(payload, path, NPESettings), read_training(payload, path)
        estimator = rebuild_network(network_builder(settings, "posterior", prior), payload, path)
        with seeded(0):
            posterior = DirectPosterior(estimator, prior.to_torch())
        return NPEPosterior(
            posterior,
            settings=settings,
            prior=prior,
            x_dim=int(payload["x_dim"]),
            training=training,
            fingerprint=payload.get("fingerprint"),
            method=self.name,
        )
