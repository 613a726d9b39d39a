"""What scoring one posterior computes once and many scores share (draws, pair statistics).

:class:`ScoringContext` holds the inputs of :func:`~inference.scores.score_posterior` and
computes each shared intermediate on first use, with its own child seed, so every entry of the
score table (:mod:`inference.score_table`) is a short function of it.

Scoring runs in blocks (:mod:`inference.score_blocks`): a context may hold only a block of the
observations (``first_observation`` says where it starts), and the intermediates of a whole
replicate may be put together from blocks with :meth:`ScoringContext.use_blocks`. Seeds never
depend on the blocks: observation ``i`` draws with ``child_seed(seed, 0, i)`` and the test pairs
in seed groups of :data:`SEED_PAIRS` rows, group ``g`` with ``child_seed(seed, 2, g)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from inference.calibration import (
    coverage_from_levels,
    hpd_levels,
    ranks_from_draws,
    recovery_from_moments,
    tarp_coverage_values,
    tarp_curve,
    tarp_references,
)
from inference.lc2st import LC2STResult, lc2st
from inference.metrics import sbc_uniformity_pvalues
from inference.posterior import Posterior
from inference.seeds import child_seed
from simulators.base import Simulator

__all__ = ["CREDIBILITY", "PAIR_DRAWS", "SEED_PAIRS", "PairStats", "ScoringContext"]

CREDIBILITY = np.linspace(0.05, 0.95, 19)
PAIR_DRAWS = 500
SEED_PAIRS = 25
"""Test pairs drawn with one seed (one vectorised sampler call); blocks of pairs are multiples."""

# Child-seed keys of the shared random steps (the score table uses 1 for C2ST, 6 for PPC).
_POSTERIOR_DRAWS, _SBC, _SBC_JITTER, _TARP, _LC2ST, _PRIOR = 0, 2, 3, 4, 5, 7


@dataclass(frozen=True)
class PairStats:
    """What scores keep of the posterior draws at a run of test pairs (rows ``start:stop``).

    Attributes
    ----------
    start : int
        First test pair (index into the finite pairs).
    ranks : (B, p) int64
        SBC rank of each true parameter among its draws.
    tarp_coverage : (B,)
        TARP's coverage value of each pair.
    hpd_level : (B,)
        Credibility of the smallest HPD region holding the true parameter.
    mean, variance : (B, p)
        Posterior mean and variance at each pair (recovery, contraction).
    first_draw : (B, p)
        One posterior draw per pair (L-C2ST's classifier data).
    nltp : (B,) or None
        ``-log q(theta_i | x_i)``; None for a posterior without a normalised density.
    """

    start: int
    ranks: np.ndarray
    tarp_coverage: np.ndarray
    hpd_level: np.ndarray
    mean: np.ndarray
    variance: np.ndarray
    first_draw: np.ndarray
    nltp: np.ndarray | None

    @classmethod
    def concat(cls, blocks: list[PairStats]) -> PairStats:
        """The blocks, in order of ``start``, as one (they must tile the pairs)."""
        blocks = sorted(blocks, key=lambda block: block.start)
        nltp = None if blocks[0].nltp is None else np.concatenate([b.nltp for b in blocks])  # type: ignore[misc]
        return cls(
            start=blocks[0].start,
            nltp=nltp,
            **{
                name: np.concatenate([getattr(b, name) for b in blocks])
                for name in (
                    "ranks",
                    "tarp_coverage",
                    "hpd_level",
                    "mean",
                    "variance",
                    "first_draw",
                )
            },
        )


@dataclass
class ScoringContext:
    """Inputs of one scoring, checked, and the intermediates scores share.

    Attributes
    ----------
    posterior : Posterior
    x_obs : (n_obs, d)
        The observations of this context (a block of them, from ``first_observation`` on).
    reference : (n_obs, n_ref, p)
    theta_test : (N, p)
        Finite held-out pairs only (all of them, whichever block is scored).
    x_test : (N, d)
    n_invalid : int
        Test pairs dropped for non-finite values.
    n_posterior_samples, n_sbc_samples, n_ppc_samples, n_lc2st_null : int
    seed : int
    simulator : Simulator or None
    truth : (n_obs, n_truth, p) or None
        Exact posterior draws, where a study scored against another reference checks it.
    first_observation : int
        Index of ``x_obs[0]`` among all observations (seeds follow the observation's index).
    """

    posterior: Posterior
    x_obs: np.ndarray
    reference: np.ndarray
    theta_test: np.ndarray
    x_test: np.ndarray
    n_invalid: int
    n_posterior_samples: int
    n_sbc_samples: int
    seed: int
    simulator: Simulator | None = None
    n_ppc_samples: int = 100
    n_lc2st_null: int = 30
    truth: np.ndarray | None = None
    first_observation: int = 0
    cache: dict[str, Any] = field(default_factory=dict)

    def observation_seed(self, key: int, observation: int) -> int:
        """Seed of step ``key`` at this context's observation ``observation`` (its global index)."""
        return child_seed(self.seed, key, self.first_observation + observation)

    def observations(self, start: int, stop: int) -> ScoringContext:
        """A context for observations ``start:stop`` of this one (same pairs, seeds, settings)."""
        truth = None if self.truth is None else self.truth[start:stop]
        return ScoringContext(
            posterior=self.posterior,
            x_obs=self.x_obs[start:stop],
            reference=self.reference[start:stop],
            theta_test=self.theta_test,
            x_test=self.x_test,
            n_invalid=self.n_invalid,
            n_posterior_samples=self.n_posterior_samples,
            n_sbc_samples=self.n_sbc_samples,
            seed=self.seed,
            simulator=self.simulator,
            n_ppc_samples=self.n_ppc_samples,
            n_lc2st_null=self.n_lc2st_null,
            truth=truth,
            first_observation=self.first_observation + start,
        )

    def use_blocks(self, draws: np.ndarray, pairs: PairStats) -> None:
        """Take the draws at the observations ``(S, n_obs, p)`` and the statistics of all test
        pairs from blocks scored elsewhere, instead of computing them here."""
        self.__dict__.update(draws=draws, pairs=pairs)  # what the cached properties would hold

    def reference_at(self, observation: int) -> np.ndarray:
        """The first ``n_posterior_samples`` reference draws at one observation: ``(n, p)``."""
        return self.reference[observation, : self.n_posterior_samples]

    @cached_property
    def draws(self) -> np.ndarray:
        """Posterior draws at the observations: ``(n_posterior_samples, n_obs, p)``."""
        n, p = self.n_posterior_samples, self.posterior.theta_dim
        draws = np.empty((n, len(self.x_obs), p))
        for i in range(len(self.x_obs)):
            seed = self.observation_seed(_POSTERIOR_DRAWS, i)
            draws[:, i] = self.posterior.sample_batched(self.x_obs[i : i + 1], n, seed)[:, 0]
        return draws

    def pair_stats(self, start: int, stop: int) -> PairStats:
        """Draw ``n_sbc_samples`` at test pairs ``start:stop`` and keep what scores need.

        ``start`` must be a multiple of :data:`SEED_PAIRS` (and ``stop`` too, or ``N``): each
        seed group of pairs is drawn with its own seed, so a pair's draws do not depend on the
        block it is scored in.
        """
        if start % SEED_PAIRS or (stop % SEED_PAIRS and stop != len(self.theta_test)):
            raise ValueError(f"pair blocks start and stop at multiples of {SEED_PAIRS}")
        theta, x = self.theta_test[start:stop], self.x_test[start:stop]
        draws = np.concatenate(
            [
                self.posterior.sample_batched(
                    self.x_test[row : min(row + SEED_PAIRS, stop)],
                    self.n_sbc_samples,
                    child_seed(self.seed, _SBC, row // SEED_PAIRS),
                )
                for row in range(start, stop, SEED_PAIRS)
            ],
            axis=1,
        )  # (S, B, p)
        box = np.stack([self.theta_test.min(axis=0), self.theta_test.max(axis=0)])
        references = tarp_references(self.theta_test, child_seed(self.seed, _TARP))[start:stop]
        normalised = self.posterior.normalised
        return PairStats(
            start=start,
            ranks=ranks_from_draws(draws, theta),
            tarp_coverage=tarp_coverage_values(draws, theta, references, box),
            hpd_level=hpd_levels(self.posterior, draws, theta, x),
            mean=draws.mean(axis=0),
            variance=draws.var(axis=0),
            first_draw=draws[0],
            nltp=-self.posterior.log_prob(theta, x) if normalised else None,
        )

    @cached_property
    def pairs(self) -> PairStats:
        """:meth:`pair_stats` of every test pair, in one block."""
        return self.pair_stats(0, len(self.theta_test))

    @cached_property
    def ranks(self) -> np.ndarray:
        """SBC ranks ``(N, p)``."""
        return self.pairs.ranks

    @cached_property
    def sbc_pvalues(self) -> np.ndarray:
        """KS p-values of rank uniformity ``(p,)``."""
        seed = child_seed(self.seed, _SBC_JITTER)
        return sbc_uniformity_pvalues(self.ranks, self.n_sbc_samples, seed=seed)

    @cached_property
    def tarp(self) -> dict[str, Any]:
        """TARP coverage (``ecp``, ``atc``, ``ks_pvalue``, ``alpha``)."""
        return tarp_curve(self.pairs.tarp_coverage)

    @cached_property
    def hpd(self) -> np.ndarray:
        """HPD-region coverage at each of :data:`CREDIBILITY`."""
        return coverage_from_levels(self.pairs.hpd_level, CREDIBILITY)

    @cached_property
    def recovered(self) -> dict[str, np.ndarray]:
        """Posterior-mean error and contraction per parameter."""
        rng = np.random.default_rng(child_seed(self.seed, _PRIOR))
        prior_draws = self.posterior.prior.sample(rng, 100_000)
        pairs = self.pairs
        return recovery_from_moments(
            pairs.mean, pairs.variance, self.theta_test, prior_draws.var(axis=0)
        )

    @cached_property
    def local(self) -> LC2STResult:
        """Local C2ST at every observation."""
        return lc2st(
            self.theta_test,
            self.x_test,
            self.pairs.first_draw,
            self.x_obs,
            self.draws,
            child_seed(self.seed, _LC2ST),
            n_null=self.n_lc2st_null,
        )
