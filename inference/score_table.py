"""The table of scores: every score declared once, with how to compute it and how to read it.

A :class:`ScoreSpec` names a variable of a score store, its dimensions, a label, whether lower
is better, whether its trend against emulator error is fitted, how one replicate is reduced to
one number for the report, the column name ``scores.csv`` gives that number, what the posterior
must offer for it (a normalised density, a simulator) and the function computing it from a
:class:`~inference.scoring_context.ScoringContext`. :func:`~inference.scores.score_posterior`,
the study's trends, ``ReportSettings`` and the report all read :data:`SCORES`; a new score is one
entry here.

Scores with ``compute=None`` are computed by the study for a whole level (misspecification tests
of the level's training data, the emulator's NLL) and only declared here so that trends and the
report treat them like the others.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from inference.mmd import mmd
from inference.predictive import predictive_distance
from inference.scoring_context import PAIR_DRAWS, ScoringContext
from simulators.seeding import Stream, sample_seeds

__all__ = [
    "SCORES",
    "SCORING_VERSION",
    "ScoreSpec",
    "quality_scores",
    "score_spec",
    "summary_scores",
    "trend_scores",
]

SCORING_VERSION = 3
"""Raised whenever a change of the scoring code changes what stored scores would read (2: C2ST
classifiers train until 20 epochs pass without progress, not 3, which read too close to 0.5;
3: draws seeded per observation and per group of test pairs, so scoring runs in blocks).
It is part of the digests of the stages that compute scores (score, the reference's
self-agreement and truth check, the emulator error), so a study scored by older code shows those
stages stale and ``emustudy run`` computes them again; trained posteriors and stores are kept."""

Reduction = Literal["mean", "min", "reject"]
Requirement = Literal["normalised", "simulator", "support_mass", "truth"]


@dataclass(frozen=True)
class ScoreSpec:
    """One score.

    Attributes
    ----------
    name : str
        Variable name in ``scores.zarr``.
    dims : tuple of str
        Its dimensions within one replicate (``observation``, ``test_pair``, ``param``, ...).
    label : str
        What it means, for the report.
    lower_is_better : bool or None
        ``None`` for diagnostics that are not a quality (calibration signs, counts, draws).
    in_trends : bool
        Whether its per-level value is regressed on the measured emulator error.
    summary : {"mean", "min", "reject"} or None
        How one replicate becomes one number in the report (``reject``: share of values below
        0.05, for p-values); ``None``: not summarised.
    column : str
        Name of that number in ``scores.csv`` (``<column>_mean``, ``_lo``, ``_hi``).
    requires : tuple of str
        ``normalised`` (a normalised density), ``simulator`` (the true simulator),
        ``support_mass`` (a posterior that can say how much of its mass leaks out of the prior),
        ``truth`` (exact posterior draws besides a reference that is not exact).
    compute : callable or None
        ``compute(context) -> value`` of shape ``dims``; ``None`` when the study computes it.
    per_observation : bool
        Computed one observation at a time (dims ``("observation",)``, each value from that
        observation's draws alone), so scoring computes it in blocks of observations
        (:mod:`inference.score_blocks`) and joins the blocks.
    """

    name: str
    dims: tuple[str, ...]
    label: str
    lower_is_better: bool | None
    in_trends: bool = False
    summary: Reduction | None = "mean"
    column: str = ""
    requires: tuple[Requirement, ...] = ()
    compute: Callable[[ScoringContext], Any] | None = None
    per_observation: bool = False

    @property
    def csv_column(self) -> str:
        """The ``scores.csv`` stem of this score (its name unless a clearer one is given)."""
        return self.column or self.name

    def applies_to(self, context: ScoringContext) -> bool:
        """Whether the posterior and inputs of ``context`` allow this score."""
        if self.compute is None:
            return False
        if "normalised" in self.requires and not context.posterior.normalised:
            return False
        if "support_mass" in self.requires and not hasattr(context.posterior, "support_mass"):
            return False
        if "truth" in self.requires and context.truth is None:
            return False
        return not ("simulator" in self.requires and context.simulator is None)


def _c2st(context: ScoringContext) -> np.ndarray:
    from inference.c2st import c2st

    return np.array(
        [
            c2st(context.reference_at(i), context.draws[:, i], context.observation_seed(1, i))
            for i in range(len(context.x_obs))
        ]
    )


def _c2st_truth(context: ScoringContext) -> np.ndarray:
    from inference.c2st import c2st

    truth, n = context.truth, context.n_posterior_samples
    assert truth is not None  # applies_to checks it
    return np.array(
        [
            c2st(truth[i, :n], context.draws[:, i], context.observation_seed(1, i))
            for i in range(len(context.x_obs))
        ]
    )


def _mmd(context: ScoringContext) -> np.ndarray:
    return np.array(
        [mmd(context.reference_at(i), context.draws[:, i]) for i in range(len(context.x_obs))]
    )


def _ppc(context: ScoringContext) -> tuple[np.ndarray, np.ndarray]:
    """Predictive distance and the share of its simulations lost, per observation (cached).

    Each observation's runs are seeded by its own index, so one simulator call serves a block."""
    if "ppc" not in context.cache:
        n = min(context.n_ppc_samples, context.n_posterior_samples)
        draws = np.arange(n)
        seeds = [
            sample_seeds(context.observation_seed(6, i), draws, Stream.SIMULATION)
            for i in range(len(context.x_obs))
        ]
        context.cache["ppc"] = predictive_distance(
            context.simulator,
            context.draws[:n],
            context.x_obs,
            context.x_test.std(axis=0),
            0,
            with_failures=True,
            seeds=np.stack(seeds, axis=1) if seeds else np.zeros((n, 0), np.uint64),
        )
    return context.cache["ppc"]


SCORES: tuple[ScoreSpec, ...] = (
    ScoreSpec(
        "c2st",
        ("observation",),
        "C2ST vs reference posterior (0.5 = identical)",
        True,
        in_trends=True,
        compute=_c2st,
        per_observation=True,
    ),
    ScoreSpec(
        "c2st_vs_truth",
        ("observation",),
        "C2ST vs the exact posterior, where the study's reference is another (checks it)",
        True,
        requires=("truth",),
        compute=_c2st_truth,
        per_observation=True,
    ),
    ScoreSpec(
        "mmd",
        ("observation",),
        "MMD² vs reference posterior",
        True,
        in_trends=True,
        compute=_mmd,
        per_observation=True,
    ),
    ScoreSpec(
        "lc2st_statistic",
        ("observation",),
        "local C2ST statistic (0 = valid at the observation)",
        True,
        in_trends=True,
        compute=lambda c: c.local.statistic,
    ),
    ScoreSpec(
        "lc2st_pvalue",
        ("observation",),
        "share of observations where L-C2ST rejects at 5 %",
        True,
        summary="reject",
        column="lc2st_rejection_share",
        compute=lambda c: c.local.pvalue,
    ),
    ScoreSpec(
        "ppc_distance",
        ("observation",),
        "posterior predictive distance to the observation",
        True,
        in_trends=True,
        requires=("simulator",),
        compute=lambda c: _ppc(c)[0],
        per_observation=True,
    ),
    ScoreSpec(
        "ppc_failed_share",
        ("observation",),
        "share of the predictive check's simulations that failed or timed out",
        None,
        summary=None,
        requires=("simulator",),
        compute=lambda c: _ppc(c)[1],
        per_observation=True,
    ),
    ScoreSpec(
        "support_leakage",
        ("observation",),
        "share of the posterior estimator's mass outside the prior's support",
        True,
        requires=("support_mass",),
        compute=lambda c: np.array(  # one observation at a time: its estimate is its own
            [1.0 - c.posterior.support_mass(x[None])[0] for x in c.x_obs]  # type: ignore[attr-defined]
        ),
        per_observation=True,
    ),
    ScoreSpec(
        "nltp",
        ("test_pair",),
        "NLTP on held-out simulator pairs",
        True,
        requires=("normalised",),
        compute=lambda c: c.pairs.nltp,
    ),
    ScoreSpec(
        "nltp_mean",
        (),
        "mean NLTP",
        True,
        in_trends=True,
        summary=None,
        requires=("normalised",),
        compute=lambda c: float(np.mean(c.pairs.nltp)),
    ),
    ScoreSpec(
        "sbc_rank",
        ("test_pair", "param"),
        "SBC rank of each true parameter",
        None,
        summary=None,
        compute=lambda c: c.ranks,
    ),
    ScoreSpec(
        "sbc_pvalue",
        ("param",),
        "smallest SBC uniformity p-value",
        False,
        summary="min",
        column="sbc_min_pvalue",
        compute=lambda c: c.sbc_pvalues,
    ),
    ScoreSpec(
        "tarp_ecp",
        ("alpha",),
        "TARP coverage curve",
        None,
        summary=None,
        compute=lambda c: c.tarp["ecp"],
    ),
    ScoreSpec(
        "tarp_atc",
        (),
        "TARP area to the diagonal (0 = calibrated)",
        None,
        in_trends=True,
        compute=lambda c: c.tarp["atc"],
    ),
    ScoreSpec(
        "tarp_pvalue",
        (),
        "TARP uniformity p-value",
        False,
        summary=None,
        compute=lambda c: c.tarp["ks_pvalue"],
    ),
    ScoreSpec(
        "hpd_coverage",
        ("credibility",),
        "HPD-region coverage",
        None,
        summary=None,
        compute=lambda c: c.hpd,
    ),
    ScoreSpec(
        "mean_error",
        ("param",),
        "RMS error of the posterior mean",
        True,
        in_trends=True,
        compute=lambda c: c.recovered["mean_error"],
    ),
    ScoreSpec(
        "contraction",
        ("param",),
        "posterior contraction",
        None,
        summary=None,
        compute=lambda c: c.recovered["contraction"],
    ),
    ScoreSpec(
        "n_invalid_test",
        (),
        "test pairs dropped for non-finite values",
        None,
        summary=None,
        compute=lambda c: c.n_invalid,
    ),
    ScoreSpec(
        "pair_draws",
        ("draw", "param"),
        "posterior draws at the first observation",
        None,
        summary=None,
        compute=lambda c: c.draws[:PAIR_DRAWS, 0],
    ),
    ScoreSpec(
        "reference_draws",
        ("draw", "param"),
        "reference draws at the first observation",
        None,
        summary=None,
        compute=lambda c: c.reference[0, : min(PAIR_DRAWS, c.draws.shape[0])],
    ),
    ScoreSpec(
        "misspecification_mmd_rate",
        (),
        "share of observations the MMD test flags",
        None,
        in_trends=True,
        summary=None,
    ),
    ScoreSpec(
        "misspecification_logprob_rate",
        (),
        "share flagged by the log-probability test",
        None,
        in_trends=True,
        summary=None,
    ),
    ScoreSpec(
        "misspecification_detected",
        ("observation",),
        "share of observations flagged as misspecified",
        None,
        in_trends=True,
    ),
)
"""Every score, in report order."""


def score_spec(name: str) -> ScoreSpec:
    """The entry of :data:`SCORES` called ``name`` (``KeyError`` listing the known ones)."""
    for spec in SCORES:
        if spec.name == name:
            return spec
    raise KeyError(f"no score {name!r}; known: {', '.join(s.name for s in SCORES)}")


def trend_scores() -> tuple[str, ...]:
    """Names of the scores whose trend against emulator error is fitted."""
    return tuple(spec.name for spec in SCORES if spec.in_trends)


def summary_scores() -> tuple[ScoreSpec, ...]:
    """Scores the report summarises to one number per replicate."""
    return tuple(spec for spec in SCORES if spec.summary is not None)


def quality_scores() -> dict[str, ScoreSpec]:
    """Summarised scores with a direction, by name: what ``report.quality_score`` may name."""
    return {spec.name: spec for spec in summary_scores() if spec.lower_is_better is not None}
