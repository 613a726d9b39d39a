"""What scoring one posterior computes once and many scores share (draws, ranks, L-C2ST).

:class:`ScoringContext` holds the inputs of :func:`~inference.scores.score_posterior` and
computes each shared intermediate on first use, with its own child seed, so every entry of the
score table (:mod:`inference.score_table`) is a short function of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from inference.calibration import ranks_from_draws, recovery, tarp
from inference.lc2st import LC2STResult, lc2st
from inference.metrics import sbc_uniformity_pvalues
from inference.posterior import Posterior
from inference.seeds import child_seed
from simulators.base import Simulator

__all__ = ["CREDIBILITY", "PAIR_DRAWS", "ScoringContext"]

CREDIBILITY = np.linspace(0.05, 0.95, 19)
PAIR_DRAWS = 500

# Child-seed keys of the shared random steps (the score table uses 1 for C2ST, 6 for PPC).
_POSTERIOR_DRAWS, _SBC, _SBC_JITTER, _TARP, _LC2ST, _PRIOR = 0, 2, 3, 4, 5, 7


@dataclass
class ScoringContext:
    """Inputs of one scoring, checked, and the intermediates scores share.

    Attributes
    ----------
    posterior : Posterior
    x_obs : (n_obs, d)
    reference : (n_obs, n_ref, p)
    theta_test : (N, p)
        Finite held-out pairs only.
    x_test : (N, d)
    n_invalid : int
        Test pairs dropped for non-finite values.
    n_posterior_samples, n_sbc_samples, n_ppc_samples, n_lc2st_null : int
    seed : int
    simulator : Simulator or None
    truth : (n_obs, n_truth, p) or None
        Exact posterior draws, where a study scored against another reference checks it.
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
    cache: dict[str, Any] = field(default_factory=dict)

    def reference_at(self, observation: int) -> np.ndarray:
        """The first ``n_posterior_samples`` reference draws at one observation: ``(n, p)``."""
        return self.reference[observation, : self.n_posterior_samples]

    @cached_property
    def draws(self) -> np.ndarray:
        """Posterior draws at the observations: ``(n_posterior_samples, n_obs, p)``."""
        seed = child_seed(self.seed, _POSTERIOR_DRAWS)
        return self.posterior.sample_batched(self.x_obs, self.n_posterior_samples, seed)

    @cached_property
    def test_draws(self) -> np.ndarray:
        """Posterior draws at the test pairs: ``(n_sbc_samples, N, p)``."""
        seed = child_seed(self.seed, _SBC)
        return self.posterior.sample_batched(self.x_test, self.n_sbc_samples, seed)

    @cached_property
    def ranks(self) -> np.ndarray:
        """SBC ranks ``(N, p)``."""
        return ranks_from_draws(self.test_draws, self.theta_test)

    @cached_property
    def sbc_pvalues(self) -> np.ndarray:
        """KS p-values of rank uniformity ``(p,)``."""
        seed = child_seed(self.seed, _SBC_JITTER)
        return sbc_uniformity_pvalues(self.ranks, self.n_sbc_samples, seed=seed)

    @cached_property
    def tarp(self) -> dict[str, Any]:
        """TARP coverage (``ecp``, ``atc``, ``ks_pvalue``, ``alpha``)."""
        return tarp(self.test_draws, self.theta_test, child_seed(self.seed, _TARP))

    @cached_property
    def recovered(self) -> dict[str, np.ndarray]:
        """Posterior-mean error and contraction per parameter."""
        rng = np.random.default_rng(child_seed(self.seed, _PRIOR))
        prior_draws = self.posterior.prior.sample(rng, 100_000)
        return recovery(self.test_draws, self.theta_test, prior_draws.var(axis=0))

    @cached_property
    def local(self) -> LC2STResult:
        """Local C2ST at every observation."""
        return lc2st(
            self.theta_test,
            self.x_test,
            self.test_draws[0],
            self.x_obs,
            self.draws,
            child_seed(self.seed, _LC2ST),
            n_null=self.n_lc2st_null,
        )
