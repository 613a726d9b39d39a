"""The ``Posterior`` contract every inference method returns, and the checks it shares.

Scores, references and the report only ever see a :class:`Posterior`: something that draws from
``q(theta | x)`` with explicit seeds, evaluates its density where it can, names its parameters and
outputs, and says which method and settings made it. NPE, NLE, NRE, MCMC on an emulator's
likelihood and the robust variants all satisfy it (see :mod:`inference.methods`).

Densities come in two strengths. ``log_prob`` is normalised over ``theta`` for every ``x`` (NLTP
needs that); ``log_prob_unnormalised`` may be off by a constant that depends on ``x`` only (ranking
draws at one ``x``, as HPD coverage does, needs no more). A posterior whose normalising constant
is unknown (MCMC on a likelihood) sets ``normalised = False`` and its ``log_prob`` raises.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from inference.training import TrainingInfo
from simulators.errors import ConfigError
from simulators.prior import Prior

__all__ = ["Posterior", "check_count", "check_rows", "check_pairs"]


@runtime_checkable
class Posterior(Protocol):
    """A trained (or sampled) posterior ``q(theta | x)``.

    Attributes
    ----------
    method : str
        Registered name of the inference method that made it (``"npe"``, ``"nle"``, ...).
    prior : Prior
        The prior it was trained with; its names are the columns of ``theta``.
    x_dim : int
        Number of simulator outputs it conditions on.
    settings : dict
        The method's settings, JSON-serialisable (what trained it).
    training : TrainingInfo
        What training did (epochs, losses, seconds); zero epochs for methods that train nothing.
    normalised : bool
        Whether :meth:`log_prob` is available (a density normalised over ``theta``).
    fingerprint : str or None
        Digest of what it was made from, when known; saved with it.
    """

    method: str
    fingerprint: str | None
    prior: Prior
    x_dim: int
    settings: dict[str, Any]
    training: TrainingInfo
    normalised: bool

    @property
    def theta_dim(self) -> int:
        """Number of parameters."""
        ...

    def sample(self, x_o: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Draws ``(n, theta_dim)`` at ``x_o`` ``(x_dim,)``; same seed, same draws."""
        ...

    def sample_batched(self, x: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Draws ``(n, batch, theta_dim)``: ``n`` at every row of ``x`` ``(batch, x_dim)``."""
        ...

    def log_prob(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Pairwise normalised log density ``(batch,)`` of ``theta`` and ``x`` ``(batch, .)``."""
        ...

    def log_prob_unnormalised(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Pairwise log density ``(batch,)`` up to a constant that depends on ``x`` only."""
        ...

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the posterior to a plain-data file that :func:`inference.load_posterior` reads."""
        ...


def check_count(n: int, name: str) -> int:
    """A positive number of samples, as an int.

    Raises
    ------
    ConfigError
        If ``n`` is not a positive integer.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def check_rows(values: np.ndarray, width: int, name: str, expected: str) -> torch.Tensor:
    """A finite ``(rows, width)`` array as a float32 tensor.

    Raises
    ------
    ConfigError
        For another shape, or rows with NaN or infinite values.
    """
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


def check_pairs(
    theta: np.ndarray, x: np.ndarray, prior: Prior
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training pairs as float32 tensors ``(n, n_params)`` and ``(n, n_outputs)``.

    Raises
    ------
    ConfigError
        If shapes disagree with each other or with the prior, or values are not finite.
    """
    theta_t = check_rows(theta, prior.dim, "theta", f"(n, {prior.dim}) for prior {prior.names}")
    x = np.asarray(x, dtype=np.float64)
    width = max(x.shape[-1], 1) if x.ndim == 2 else 1
    x_t = check_rows(x, width, "x", "(n, n_outputs >= 1)")
    if x_t.shape[0] != theta_t.shape[0]:
        raise ConfigError(
            f"theta has {theta_t.shape[0]} rows but x has {x_t.shape[0]}; pass one x per theta"
        )
    return theta_t, x_t
