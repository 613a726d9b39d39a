"""Reference posteriors at the observations: exact where the model has one, else an ensemble.

Every comparison at an observation (C2ST, MMD) is against reference draws. A simulator with an
exact posterior (:class:`simulators.base.ExactPosterior`, e.g. Gaussian linear) gives them
directly (:class:`ExactReference`). Otherwise :func:`train_reference_ensemble` trains several NPE
posteriors with different seeds on a high-budget true-simulator store, and the ensemble's draws
are an equal mixture of its members' (:class:`EnsembleReference`). Its
:meth:`EnsembleReference.self_agreement` (C2ST between pairs of members) is the noise floor of
every comparison against it: a score within that floor says nothing.
"""

from __future__ import annotations

import itertools
from typing import Protocol

import numpy as np

from inference.c2st import c2st
from inference.npe import train_npe
from inference.observations import check_observations
from inference.posterior import Posterior
from inference.seeds import child_seed
from inference.settings import NPESettings
from simulators.base import ExactPosterior
from simulators.errors import ConfigError
from simulators.prior import Prior

__all__ = ["Reference", "ExactReference", "EnsembleReference", "train_reference_ensemble"]


class Reference(Protocol):
    """Anything that draws reference posterior samples at observations."""

    kind: str

    def sample(self, x_obs: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Draws ``(n_obs, n, p)`` at each row of ``x_obs`` ``(n_obs, d)``."""
        ...


class ExactReference:
    """The simulator's exact posterior."""

    kind = "exact"

    def __init__(self, simulator: ExactPosterior) -> None:
        if not isinstance(simulator, ExactPosterior):
            raise ConfigError(
                f"{type(simulator).__name__} has no exact posterior; use "
                "train_reference_ensemble for a trained reference instead"
            )
        self.simulator = simulator

    def sample(self, x_obs: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Exact posterior draws: ``(n_obs, n, p)`` float64."""
        x_obs = check_observations(x_obs, len(self.simulator.output_names), "x_obs")
        rng = np.random.default_rng(seed)
        return np.stack([self.simulator.sample_posterior(x_o, n, rng) for x_o in x_obs])


class EnsembleReference:
    """An equal mixture of NPE posteriors trained on true-simulator data.

    Parameters
    ----------
    members : sequence of Posterior
        At least two, so that their self-agreement can be measured.
    """

    kind = "ensemble"

    def __init__(self, members: list[Posterior]) -> None:
        if len(members) < 2:
            raise ConfigError(
                f"a reference ensemble needs at least 2 members, got {len(members)}; "
                "train more members"
            )
        self.members = list(members)

    def sample(self, x_obs: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Mixture draws, ``n`` split as evenly as possible over members, shuffled.

        Returns
        -------
        draws : (n_obs, n, p)
        """
        k = len(self.members)
        counts = [n // k + (i < n % k) for i in range(k)]
        pieces = [
            member.sample_batched(np.asarray(x_obs), count, child_seed(seed, i))
            for i, (member, count) in enumerate(zip(self.members, counts, strict=True))
            if count
        ]
        draws = np.concatenate(pieces, axis=0)  # (n, n_obs, p)
        order = np.random.default_rng(child_seed(seed, k)).permutation(n)
        return np.moveaxis(draws[order], 0, 1)

    def self_agreement(self, x_obs: np.ndarray, n: int, seed: int) -> np.ndarray:
        """C2ST between every pair of members at every observation.

        Returns
        -------
        c2st : (n_obs, n_pairs)
            About 0.5 when the members agree; the noise floor of scores against this reference.
        """
        x_obs = np.asarray(x_obs)
        draws = [
            member.sample_batched(x_obs, n, child_seed(seed, i))
            for i, member in enumerate(self.members)
        ]
        pairs = list(itertools.combinations(range(len(self.members)), 2))
        return np.array(
            [
                [
                    c2st(draws[i][:, o], draws[j][:, o], child_seed(seed, 1000, o, i, j))
                    for i, j in pairs
                ]
                for o in range(len(x_obs))
            ]
        )


def train_reference_ensemble(
    theta: np.ndarray,
    x: np.ndarray,
    prior: Prior,
    settings: NPESettings,
    *,
    members: int,
    seed: int,
) -> EnsembleReference:
    """Train ``members`` NPE posteriors on the same true-simulator pairs with child seeds.

    Parameters
    ----------
    theta : (n, p)
    x : (n, d)
        A high-budget true-simulator store's valid pairs.
    prior : Prior
    settings : NPESettings
    members : int
        At least 2.
    seed : int

    Returns
    -------
    EnsembleReference
    """
    if members < 2:
        raise ConfigError(f"members must be at least 2, got {members}")
    return EnsembleReference(
        [train_npe(theta, x, prior, settings, seed=child_seed(seed, i)) for i in range(members)]
    )
