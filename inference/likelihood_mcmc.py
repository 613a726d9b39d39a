"""The posterior of a given likelihood ``q(x | theta)``, sampled by MCMC: ``emulator_likelihood``.

For an emulator level the likelihood is the level's trained emulator density, so this posterior
carries the emulator's error and nothing else: no posterior network is trained, and there is no
amortisation error. Set beside NPE on the same level's emulated data, it separates "error from
the emulator" from "error from learning a posterior on emulator data". For the true simulator
(the ceiling) it samples the simulator's own ``log_likelihood`` where one is declared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from inference.mcmc import LikelihoodPotential, SampledPosterior
from inference.methods import InferenceMethod, Likelihood, MethodContext
from inference.posterior import check_pairs
from inference.settings import MethodSettings
from inference.training import TrainingInfo
from simulators.prior import Prior

__all__ = ["EmulatorLikelihoodMethod", "FunctionLikelihood"]


@dataclass(frozen=True)
class FunctionLikelihood:
    """A :class:`~inference.methods.Likelihood` made of a name and a function.

    Attributes
    ----------
    name : str
    function : callable
        ``function(theta (n, p), x (n, d)) -> (n,)``, pairwise log-densities.
    """

    name: str
    function: Callable[[np.ndarray, np.ndarray], np.ndarray]

    def log_likelihood(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Pairwise ``log q(x_i | theta_i)``: theta ``(n, p)``, x ``(n, d)`` -> ``(n,)``."""
        return np.asarray(self.function(theta, x), dtype=np.float64)


class EmulatorLikelihoodMethod(InferenceMethod):
    """MCMC on a given likelihood (``context.likelihood``); the pairs only set ``x``'s size."""

    name: ClassVar[str] = "emulator_likelihood"
    description: ClassVar[str] = (
        "MCMC on the level's own density q(x | theta) (no posterior network, no amortisation)"
    )
    trains: ClassVar[bool] = False
    needs_likelihood: ClassVar[bool] = True
    amortised: ClassVar[bool] = False

    def relevant_settings(self, settings: MethodSettings) -> BaseModel:
        """Only the sampler: nothing is trained."""
        return settings.mcmc

    def train(
        self,
        theta: np.ndarray,
        x: np.ndarray,
        prior: Prior,
        settings: MethodSettings,
        *,
        seed: int,
        context: MethodContext,
    ) -> SampledPosterior:
        """Wrap ``context.likelihood`` for MCMC (nothing is fitted to ``theta``, ``x``)."""
        _, x_t = check_pairs(theta, x, prior)
        return self._posterior(context.likelihood, prior, int(x_t.shape[1]), settings)

    def load(
        self, payload: dict[str, Any], prior: Prior, path: Path, context: MethodContext
    ) -> SampledPosterior:
        """Rebuild from the file's settings and the likelihood the context gives."""
        settings = MethodSettings.model_validate(payload["settings"])
        posterior = self._posterior(context.likelihood, prior, int(payload["x_dim"]), settings)
        posterior.fingerprint = payload.get("fingerprint")
        return posterior

    def _posterior(
        self, likelihood: Likelihood | None, prior: Prior, x_dim: int, settings: MethodSettings
    ) -> SampledPosterior:
        assert likelihood is not None  # checked by train_posterior / load_posterior
        potential = LikelihoodPotential.create(likelihood.log_likelihood, prior.to_torch())
        return SampledPosterior(
            method=self.name,
            potential=potential,
            prior=prior,
            x_dim=x_dim,
            settings=settings.model_dump(mode="json", exclude={"options"}),
            mcmc=settings.mcmc,
            training=TrainingInfo(
                epochs=0,
                best_validation_loss=float("nan"),
                seconds=0.0,
                n_train=0,
                n_validation=0,
                converged=True,
            ),
            extra={"likelihood": likelihood.name},
        )
