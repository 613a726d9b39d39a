"""Reference posteriors at the observations: exact where the model has one, else an ensemble.

Every comparison at an observation (C2ST, MMD) is against reference draws. A simulator with an
exact posterior (:class:`simulators.base.ExactPosterior`, e.g. Gaussian linear) gives them
directly (:class:`ExactReference`). Otherwise :func:`train_reference_ensemble` trains several NPE
posteriors with different seeds on a high-budget true-simulator store, and the ensemble's draws
are an equal mixture of its members' (:class:`EnsembleReference`; the checked version on a
campaign of its own is :mod:`inference.simulation_reference`). Draws a user brings from a file
are a :class:`SamplesReference`. An ensemble's
:meth:`EnsembleReference.self_agreement` (C2ST between pairs of members) is the noise floor of
every comparison against it: a score within that floor says nothing.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from inference.c2st import c2st
from inference.npe import train_npe
from inference.observation_files import read_reference_samples
from inference.observations import check_observations
from inference.posterior import Posterior
from inference.seeds import child_seed
from inference.settings import NPESettings
from simulators.base import ExactPosterior
from simulators.errors import ConfigError
from simulators.prior import Prior

__all__ = [
    "Reference",
    "ExactReference",
    "EnsembleReference",
    "SamplesReference",
    "train_reference_ensemble",
]


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


class SamplesReference:
    """Reference draws the user brings, per observation (e.g. from a long MCMC run).

    Parameters
    ----------
    draws : (n_obs, n_draws, p)
        Finite draws; observation ``o`` of every ``sample`` call must be observation ``o`` here.
    source : str
        Where they came from (shown in messages and reports).
    x_obs : (n_obs, d), optional
        The observations the draws belong to; when given, ``sample`` refuses others.
    """

    kind = "samples"

    def __init__(
        self, draws: np.ndarray, source: str = "", x_obs: np.ndarray | None = None
    ) -> None:
        draws = np.asarray(draws, dtype=np.float64)
        if draws.ndim != 3 or 0 in draws.shape or not np.isfinite(draws).all():
            raise ConfigError(
                f"reference samples from {source or 'an array'} must be finite, of shape "
                f"(n_obs, n_draws, p) with none empty, got shape {draws.shape}"
            )
        self.draws = draws
        self.source = source
        if x_obs is not None:
            x_obs = np.asarray(x_obs, dtype=np.float64)
            x_obs = check_observations(x_obs, x_obs.shape[-1] if x_obs.ndim else 0, "x_obs")
            if len(x_obs) != len(draws):
                raise ConfigError(
                    f"{len(x_obs)} observations given for reference samples of {len(draws)} "
                    f"observations from {source or 'an array'}; give one row per observation"
                )
        self.x_obs = x_obs

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        param_names: Sequence[str],
        x_obs: np.ndarray | None = None,
    ) -> SamplesReference:
        """Read draws with :func:`inference.observation_files.read_reference_samples`."""
        return cls(read_reference_samples(path, param_names), str(path), x_obs)

    def sample(self, x_obs: np.ndarray, n: int, seed: int) -> np.ndarray:
        """The first ``n`` stored draws at each observation (``seed`` is unused).

        Returns
        -------
        draws : (n_obs, n, p)

        Raises
        ------
        ConfigError
            If ``x_obs`` has another number of rows (or other values, when the reference knows
            its observations), or fewer than ``n`` draws are stored.
        """
        n_obs, stored = self.draws.shape[:2]
        x_obs = np.asarray(x_obs, dtype=np.float64)
        if x_obs.ndim != 2 or len(x_obs) != n_obs:
            raise ConfigError(
                f"the reference samples from {self.source or 'an array'} are for {n_obs} "
                f"observations, but {x_obs.shape[0] if x_obs.ndim else 1} were given; give "
                "the observations these draws were made at, in the same order"
            )
        if self.x_obs is not None and (
            x_obs.shape != self.x_obs.shape or not np.allclose(x_obs, self.x_obs)
        ):
            raise ConfigError(
                f"the observations given differ from those the reference samples from "
                f"{self.source or 'an array'} were made at; use those observations"
            )
        if n > stored:
            raise ConfigError(
                f"{n} reference draws per observation requested, but {self.source or 'the array'}"
                f" holds {stored}; ask for at most {stored} or bring more draws"
            )
        return self.draws[:, :n].copy()


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
