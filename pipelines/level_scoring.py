"""Scoring one unit (a level with one inference method) into its ``scores.zarr``, in pieces.

The pieces are what the score stage runs as Dask tasks (:mod:`pipelines.score_graph`); each
takes the parts of the config it reads (:class:`LevelScoring`) and plain arrays:

* :func:`scoring_inputs`: the observations, the reference draws (and exact draws where they check
  another reference) and the held-out test pairs, once per unit;
* :func:`replicate_context`: one replicate's posterior with those inputs, which
  :mod:`inference.score_blocks` scores in blocks of observations and of test pairs and
  :func:`inference.scores.finish_scores` joins;
* :func:`level_extras`: what a whole level has (misspecification tests of its training data,
  its stand-in's NLL on the test pairs);
* :func:`write_level_scores`: the replicates stacked, with the extras, into ``scores.zarr``.

:func:`score_level` runs them one after the other (one block each), as a single task would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from inference.methods import MethodContext, get_method, load_posterior
from inference.misspecification import (
    detection_rate,
    logprob_misspecification,
    mmd_misspecification,
)
from inference.reference import ExactReference
from inference.score_blocks import score_observations, score_pairs
from inference.scores import finish_scores, save_scores, scoring_context, stack_replicates
from inference.scoring_context import ScoringContext
from inference.seeds import child_seed
from pipelines.config import ScoreSettings
from pipelines.layout import StudyLayout
from pipelines.scoring import observations, reference_for
from pipelines.units import LikelihoodSource
from simulators.base import ExactPosterior, Simulator
from simulators.store import load_pairs, open_store

__all__ = [
    "LevelScoring",
    "ScoringInputs",
    "level_extras",
    "replicate_context",
    "score_level",
    "scoring_inputs",
    "write_level_scores",
]


@dataclass(frozen=True)
class LevelScoring:
    """Everything scoring one unit reads, and nothing more (sent to Dask tasks).

    Attributes
    ----------
    name : str
        The unit (``full``, ``full/nle``, ``ceiling``).
    level : str
        Its level's folder name.
    simplification : float
        NaN for the ceiling.
    method : str
    replicates : int
    reference : str
        The reference posterior's kind (exact, likelihood, simulation, samples).
    observation_file : Path or None
        Observed data, where the config gives a file.
    scores : ScoreSettings
    training_store : Path
        What its posteriors were trained on (for the misspecification tests).
    training_limit : int or None
    has_stand_in : bool
    likelihood : LikelihoodSource
    seed, observation_seed, reference_seed : int
    """

    name: str
    level: str
    simplification: float
    method: str
    replicates: int
    reference: str
    observation_file: Path | None
    scores: ScoreSettings
    training_store: Path
    training_limit: int | None
    has_stand_in: bool
    likelihood: LikelihoodSource
    seed: int
    observation_seed: int
    reference_seed: int

    @property
    def max_test_pairs(self) -> int | None:
        """Test pairs scored: all for amortised methods, ``scores.mcmc_test_pairs`` for MCMC."""
        return None if get_method(self.method).amortised else self.scores.mcmc_test_pairs


@dataclass(frozen=True)
class ScoringInputs:
    """What every replicate of a unit is scored on.

    Attributes
    ----------
    x_obs : (n_obs, d)
        The observations, through the study's observation model.
    n_non_finite : int
        Observations dropped for non-finite outputs.
    reference : (n_obs, n, p)
        Reference draws, ``n = scores.posterior_samples``.
    reference_kind : str
    truth : (n_obs, n, p) or None
        Exact draws, where the simulator has an exact posterior but the study another reference.
    theta_test : (N, p), x_test : (N, d)
        Every held-out pair, failed runs included (scoring counts and drops them).
    """

    x_obs: np.ndarray
    n_non_finite: int
    reference: np.ndarray
    reference_kind: str
    truth: np.ndarray | None
    theta_test: np.ndarray
    x_test: np.ndarray


def scoring_inputs(job: LevelScoring, layout: StudyLayout, simulator: Simulator) -> ScoringInputs:
    """The observations, reference draws and test pairs of one unit (see :class:`ScoringInputs`)."""
    settings = job.scores
    found = observations(settings, layout, job.observation_seed, job.observation_file, simulator)
    reference = reference_for(simulator, layout, job.reference)
    draws = reference.sample(found.x, settings.posterior_samples, job.reference_seed)
    truth = None
    if job.reference != "exact" and isinstance(simulator, ExactPosterior):
        # a model with a known posterior scored against another reference: check that reference
        truth = ExactReference(simulator).sample(
            found.x, settings.posterior_samples, child_seed(job.reference_seed, 1)
        )
    ds = open_store(layout.simulations("test"))
    return ScoringInputs(
        x_obs=found.x,
        n_non_finite=found.n_non_finite,
        reference=draws,
        reference_kind=reference.kind,
        truth=truth,
        theta_test=np.asarray(ds["theta"].values, np.float64),
        x_test=np.asarray(ds["x"].values, np.float64),
    )


def replicate_context(
    job: LevelScoring,
    layout: StudyLayout,
    simulator: Simulator,
    guarded: Simulator,
    inputs: ScoringInputs,
    replicate: int,
    likelihood: MethodContext | None = None,
) -> ScoringContext:
    """Replicate ``replicate``'s posterior with the unit's inputs, checked, ready to score.

    ``guarded`` is ``simulator`` run through the campaign engine's executor (killable, retried):
    the posterior predictive check runs it on posterior draws that may be anywhere in the prior.
    ``likelihood``: the unit's likelihood context, made from ``job.likelihood`` when not given.
    """
    settings = job.scores
    posterior = load_posterior(
        layout.level(job.name).replicate_posterior(replicate),
        simulator.prior,
        context=job.likelihood.context() if likelihood is None else likelihood,
    )
    return scoring_context(
        posterior,
        x_obs=inputs.x_obs,
        reference_samples=inputs.reference,
        theta_test=inputs.theta_test,
        x_test=inputs.x_test,
        n_posterior_samples=settings.posterior_samples,
        n_sbc_samples=settings.sbc_samples,
        seed=child_seed(job.seed, replicate),
        simulator=guarded,
        n_ppc_samples=settings.ppc_samples,
        n_lc2st_null=settings.lc2st_null,
        max_test_pairs=job.max_test_pairs,
        truth_samples=inputs.truth,
    )


def level_extras(job: LevelScoring, layout: StudyLayout, inputs: ScoringInputs) -> xr.Dataset:
    """The level's misspecification tests (its training data against the observations) and its
    stand-in's NLL on the finite test pairs, as variables with a ``level`` dim (size 1)."""
    extras = xr.Dataset()
    _, x_train, counts = load_pairs(job.training_store, limit=job.training_limit)
    alpha = job.scores.misspecification_alpha
    for test, key in ((mmd_misspecification, "mmd"), (logprob_misspecification, "logprob")):
        pvalues = test(x_train, inputs.x_obs, child_seed(job.seed, 1000))
        extras[f"misspecification_{key}_pvalue"] = (("level", "observation"), pvalues[None])
        extras[f"misspecification_{key}_rate"] = ("level", [detection_rate(pvalues, alpha)])
    flagged = (extras["misspecification_mmd_pvalue"] < alpha) | (
        extras["misspecification_logprob_pvalue"] < alpha
    )
    extras["misspecification_detected"] = flagged.astype(float)
    extras["n_invalid_train"] = ("level", [sum(v for k, v in counts.items() if k != "ok")])
    if job.has_stand_in:
        from emulators.levels import load_stand_in  # imports Lightning: only where it runs

        stand_in = load_stand_in(layout.level(job.name).emulator)
        if getattr(stand_in, "has_density", hasattr(stand_in, "log_prob")):
            theta, x = inputs.theta_test, inputs.x_test
            finite = np.isfinite(x).all(axis=1)
            nll = -stand_in.log_prob(x[finite], theta[finite])  # type: ignore[attr-defined]
            extras["emulator_nll"] = (("level", "held_out_pair"), nll[None])
    return extras


def write_level_scores(
    job: LevelScoring,
    layout: StudyLayout,
    inputs: ScoringInputs,
    replicates: list[xr.Dataset],
    extras: xr.Dataset,
) -> None:
    """Stack the replicates' scores, add the level's extras and attributes, write
    ``scores.zarr`` (atomically)."""
    settings = job.scores
    scores = stack_replicates(replicates, job.level)
    for name, variable in extras.data_vars.items():
        scores[name] = (variable.dims, variable.values)
    scores.attrs.update(
        simplification=job.simplification,
        method=job.method,
        reference=inputs.reference_kind,
        observation_model=settings.observation_model.model_dump(),
        misspecification_alpha=settings.misspecification_alpha,
        n_non_finite_observations=inputs.n_non_finite,
    )
    save_scores(scores, layout.level(job.name).scores)


def score_level(
    job: LevelScoring,
    layout: StudyLayout,
    simulator: Simulator,
    guarded: Simulator,
    likelihood: MethodContext | None = None,
) -> None:
    """Score every replicate of one unit and write its ``scores.zarr``, here, in one go."""
    inputs = scoring_inputs(job, layout, simulator)
    likelihood = job.likelihood.context() if likelihood is None else likelihood
    replicates = []
    for replicate in range(job.replicates):
        context = replicate_context(job, layout, simulator, guarded, inputs, replicate, likelihood)
        observed = score_observations(context, 0, len(context.x_obs))
        pairs = score_pairs(context, 0, len(context.theta_test))
        replicates.append(finish_scores(context, [observed], [pairs]))
    write_level_scores(job, layout, inputs, replicates, level_extras(job, layout, inputs))
