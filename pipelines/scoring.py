"""The work behind the ``infer`` and ``score`` stages, run on Dask workers.

* :func:`train_replicates`: a level's NPE posteriors, one per training seed.
* :func:`train_reference_member`: one member of the reference ensemble (simulators without an
  exact posterior), and :func:`save_reference_agreement` its noise floor.
* :func:`score_level`: every score of a level's replicates, its misspecification tests, and
  the level's measured emulator error, into ``scores.zarr`` (``level x replicate x ...``).
* :func:`save_trend`: each score against the measured emulator error, across levels.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from emulators.error import load_emulator_error
from emulators.levels import AnyLevel, load_stand_in
from inference.misspecification import (
    detection_rate,
    logprob_misspecification,
    mmd_misspecification,
)
from inference.npe import TrainedPosterior
from inference.reference import EnsembleReference, ExactReference, Reference
from inference.scores import (
    SCORES_FORMAT,
    load_scores,
    save_scores,
    score_posterior,
    stack_replicates,
)
from inference.seeds import child_seed
from inference.trend import score_trends
from pipelines.config import StudyConfig
from pipelines.layout import StudyLayout, level_name
from simulators.base import ExactPosterior, Simulator
from simulators.registry import make_simulator
from simulators.store import load_pairs, open_store

__all__ = [
    "TREND_SCORES",
    "observations",
    "reference_for",
    "save_reference_agreement",
    "save_trend",
    "score_level",
    "train_reference_member",
    "train_replicates",
]

TREND_SCORES = (
    "c2st",
    "mmd",
    "nltp_mean",
    "ppc_distance",
    "lc2st_statistic",
    "tarp_atc",
    "mean_error",
    "misspecification_mmd_rate",
    "misspecification_logprob_rate",
    "misspecification_detected",
)
"""Per-level scores whose trend against emulator error goes into ``trend.zarr``."""


def _simulator(config: StudyConfig) -> Simulator:
    return make_simulator(config.simulator.name, **config.simulator.settings)


def train_replicates(
    config: StudyConfig, store: Path, limit: int | None, outs: list[Path], seed: int
) -> None:
    """Train one posterior per path in ``outs`` on the valid pairs of ``store``.

    A killed run called again keeps the posteriors it finished and resumes the one it was
    training (:func:`~inference.resume.train_npe_to`).
    """
    from inference.resume import train_npe_to  # imports sbi's trainers: only where they run

    theta, x, _ = load_pairs(store, limit=limit)
    prior = _simulator(config).prior
    for index, out in enumerate(outs):
        train_npe_to(out, theta, x, prior, config.inference.npe, seed=child_seed(seed, index))


def train_reference_member(config: StudyConfig, layout: StudyLayout, index: int, seed: int) -> None:
    """Train reference-ensemble member ``index`` on the true-simulator training store."""
    from inference.resume import train_npe_to

    theta, x, _ = load_pairs(layout.simulations("train"), limit=config.inference.reference_budget)
    prior = _simulator(config).prior
    train_npe_to(layout.reference_member(index), theta, x, prior, config.inference.npe, seed=seed)


def reference_for(config: StudyConfig, layout: StudyLayout, simulator: Simulator) -> Reference:
    """The exact posterior when the simulator has one, else the trained reference ensemble."""
    if isinstance(simulator, ExactPosterior):
        return ExactReference(simulator)
    members = range(config.inference.reference_members)
    return EnsembleReference(
        [TrainedPosterior.load(layout.reference_member(i), simulator.prior) for i in members]
    )


def observations(config: StudyConfig, layout: StudyLayout, seed: int) -> np.ndarray:
    """The finite observations, passed through the study's observation model.

    Returns
    -------
    x_obs : (n_obs, d)
    """
    x = open_store(layout.simulations("observations"))["x"].values
    x = x[np.isfinite(x).all(axis=1)]
    _, x_test, _ = load_pairs(layout.simulations("test"))
    return config.scores.observation_model.apply(x, x_test.std(axis=0), seed)


def save_reference_agreement(config: StudyConfig, layout: StudyLayout, seed: int) -> None:
    """C2ST between every pair of reference members at every observation (the noise floor)."""
    simulator = _simulator(config)
    reference = reference_for(config, layout, simulator)
    if not isinstance(reference, EnsembleReference):
        return  # an exact posterior agrees with itself: there is no noise floor to measure
    x_obs = observations(config, layout, child_seed(seed, 0))
    agreement = reference.self_agreement(x_obs, config.scores.posterior_samples, seed)
    ds = xr.Dataset(
        {"c2st": (("observation", "member_pair"), agreement)},
        attrs={"format": SCORES_FORMAT, "kind": "reference self-agreement"},
    )
    save_scores(ds, layout.reference_agreement)


def score_level(
    config: StudyConfig,
    layout: StudyLayout,
    level: AnyLevel | None,
    seed: int,
    observation_seed: int,
    reference_seed: int,
) -> None:
    """Score every replicate of one level and write the level's ``scores.zarr``."""
    name = level_name(level)
    paths = layout.level(name)
    simulator = _simulator(config)
    settings = config.scores
    x_obs = observations(config, layout, observation_seed)
    reference = reference_for(config, layout, simulator)
    reference_draws = reference.sample(x_obs, settings.posterior_samples, reference_seed)
    theta_test, x_test, _ = load_pairs(layout.simulations("test"))
    replicates = [
        score_posterior(
            TrainedPosterior.load(paths.replicate_posterior(i), simulator.prior),
            x_obs=x_obs,
            reference_samples=reference_draws,
            theta_test=theta_test,
            x_test=x_test,
            n_posterior_samples=settings.posterior_samples,
            n_sbc_samples=settings.sbc_samples,
            seed=child_seed(seed, i),
            simulator=simulator,
            n_ppc_samples=settings.ppc_samples,
            n_lc2st_null=settings.lc2st_null,
        )
        for i in range(config.inference.replicates)
    ]
    scores = stack_replicates(replicates, name)
    store = layout.simulations("train") if level is None else paths.emulated
    limit = config.budgets.emulated_runs if level is None else None
    _, x_train, counts = load_pairs(store, limit=limit)
    alpha = settings.misspecification_alpha
    for test, key in ((mmd_misspecification, "mmd"), (logprob_misspecification, "logprob")):
        pvalues = test(x_train, x_obs, child_seed(seed, 1000))
        scores[f"misspecification_{key}_pvalue"] = (("level", "observation"), pvalues[None])
        scores[f"misspecification_{key}_rate"] = ("level", [detection_rate(pvalues, alpha)])
    flagged = (scores["misspecification_mmd_pvalue"] < alpha) | (
        scores["misspecification_logprob_pvalue"] < alpha
    )
    scores["misspecification_detected"] = flagged.astype(float)
    scores["n_invalid_train"] = ("level", [sum(v for k, v in counts.items() if k != "ok")])
    scores.attrs.update(
        simplification=np.nan if level is None else float(level.simplification),
        reference=reference.kind,
        observation_model=settings.observation_model.model_dump(),
        misspecification_alpha=alpha,
    )
    if level is not None:
        stand_in = load_stand_in(paths.emulator)
        if hasattr(stand_in, "log_prob"):
            nll = -stand_in.log_prob(x_test, theta_test)
            scores["emulator_nll"] = (("level", "test_pair"), nll[None])
    save_scores(scores, paths.scores)


def _per_level(ds: xr.Dataset, names: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Each named variable of a one-level Dataset averaged to one number."""
    return {name: float(ds[name].astype(float).mean()) for name in names if name in ds}


def _table(rows: dict[str, dict[str, float]]) -> xr.Dataset:
    """Per-level numbers as a Dataset with a ``level`` dim (NaN where a level lacks one)."""
    columns = sorted({column for row in rows.values() for column in row})
    return xr.Dataset(
        {c: ("level", [rows[level].get(c, np.nan) for level in rows]) for c in columns},
        coords={"level": list(rows)},
    )


def save_trend(layout: StudyLayout, names: list[str]) -> None:
    """Write ``trend.zarr``: every per-level score against every measured emulator error.

    Errors come from each level's ``emulator_error.zarr`` when present, plus the emulator's
    NLL on the test pairs (``emulator_nll``) from its scores.
    """
    scores: dict[str, dict[str, float]] = {}
    errors: dict[str, dict[str, float]] = {}
    for name in names:
        paths = layout.level(name)
        if not paths.scores.exists():
            continue
        ds = load_scores(paths.scores)
        scores[name] = _per_level(ds, TREND_SCORES)
        error = _per_level(ds, ["emulator_nll"])
        if paths.emulator_error.exists():
            measured = load_emulator_error(paths.emulator_error)
            error.update(_per_level(measured, [str(v) for v in measured.data_vars]))
        if error:
            errors[name] = error
    if not errors:
        warnings.warn("no level has a measured emulator error: no trend.zarr", stacklevel=2)
        return
    trend = score_trends(_table(scores), _table(errors))
    trend.attrs.update(format=SCORES_FORMAT, kind="score trend against emulator error")
    save_scores(trend, layout.trend)
