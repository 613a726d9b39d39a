"""Scoring one posterior in blocks: observations and test pairs as separate pieces of work.

A replicate's scores split into work that a cluster can spread over its workers:

* :func:`score_observations`: the draws at a block of observations and every score computed one
  observation at a time (C2ST, MMD, the predictive check, leakage; the score table's
  ``per_observation`` entries), as :class:`ObservationScores`;
* :func:`score_pairs`: the draws at a block of held-out test pairs, reduced to what the scores
  keep of them (SBC ranks, TARP coverage values, HPD levels, moments, NLTP, one draw for L-C2ST),
  as :class:`~inference.scoring_context.PairStats`;
* :func:`finish_scores`: the blocks joined, and what needs all of them (L-C2ST,
  the SBC, TARP and coverage summaries, recovery).

Every seed follows the index of the observation or of the seed group of :data:`SEED_PAIRS` test
pairs, never the block, so the scores are the same for any block sizes and any number of
workers. :func:`block_ranges` plans the blocks and :func:`block_memory` bounds a task's memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from inference.c2st import C2ST_FOLDS
from inference.score_table import SCORES
from inference.scoring_context import CREDIBILITY, SEED_PAIRS, PairStats, ScoringContext

__all__ = [
    "SCORES_FORMAT",
    "SEED_PAIRS",
    "ObservationScores",
    "block_memory",
    "block_ranges",
    "finish_scores",
    "score_observations",
    "score_pairs",
]

SCORES_FORMAT = "emustudy-scores/1"
"""The ``format`` attribute of every score store (:func:`inference.scores.save_scores`)."""


@dataclass(frozen=True)
class ObservationScores:
    """The scores of a block of observations, from ``start`` on.

    Attributes
    ----------
    start : int
        Index of the block's first observation.
    draws : (n_posterior_samples, B, p)
        Posterior draws at its observations (L-C2ST and the pair plot use them).
    values : dict of str to (B,)
        Each applicable ``per_observation`` score of :data:`~inference.score_table.SCORES`.
    """

    start: int
    draws: np.ndarray
    values: dict[str, np.ndarray]


def block_ranges(n: int, size: int, align: int = 1) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive blocks of about ``size`` of ``n`` items.

    ``size`` is rounded up to a multiple of ``align`` (the seed groups of test pairs), so every
    block but the last starts and stops on a multiple of it.
    """
    if n < 0 or size < 1 or align < 1:
        raise ValueError(f"need n >= 0, size >= 1 and align >= 1, got {n}, {size}, {align}")
    step = align * math.ceil(size / align)
    return [(start, min(start + step, n)) for start in range(0, n, step)]


def score_observations(context: ScoringContext, start: int, stop: int) -> ObservationScores:
    """Draw at observations ``start:stop`` of ``context`` and compute their per-observation
    scores (each with the seed of its observation's index).

    Memory: the draws, ``8 * n_posterior_samples * B * p`` bytes, the reference draws of the
    block, and one C2ST at a time (``2 * n_posterior_samples`` rows; see :func:`block_memory`).
    """
    block = context.observations(start, stop)
    values = {
        spec.name: np.asarray(spec.compute(block), dtype=np.float64)  # type: ignore[misc]
        for spec in SCORES
        if spec.per_observation and spec.applies_to(block)
    }
    return ObservationScores(start=start, draws=block.draws, values=values)


def score_pairs(context: ScoringContext, start: int, stop: int) -> PairStats:
    """Draw ``n_sbc_samples`` at test pairs ``start:stop`` and keep what the scores need
    (:meth:`~inference.scoring_context.ScoringContext.pair_stats`; ``start`` a multiple of
    :data:`SEED_PAIRS`)."""
    return context.pair_stats(start, stop)


def block_memory(
    kind: str, *, rows: int, draws: int, n_params: int, n_outputs: int, n_pairs: int = 0
) -> int:
    """Bytes one block task holds at its peak, beyond the posterior and the Python process.

    Parameters
    ----------
    kind : {"pairs", "observations"}
    rows : int
        Test pairs (or observations) in the block.
    draws : int
        ``sbc_samples`` for pairs, ``posterior_samples`` for observations.
    n_params, n_outputs : int
    n_pairs : int
        All test pairs (every task holds them: ``(N, p + d)``).

    Returns
    -------
    bytes : int
        For pairs: the draws ``(S, B, p)`` in float64 and float32, and the HPD ranking's
        repeated inputs ``(S * B, p + d)`` in float64 and float32:
        ``S * B * (12 p + 12 (p + d))``. For observations: the draws and the block's reference
        draws ``2 * 8 * S * B * p``, and one C2ST's inputs and batched folds
        ``(5 folds x 2 S x p)`` in float32. Plus ``8 * N * (p + d)`` for the test pairs.
    """
    p, d = n_params, n_outputs
    shared = 8 * n_pairs * (p + d)
    if kind == "pairs":
        return shared + draws * rows * (12 * p + 12 * (p + d))
    if kind == "observations":
        return shared + 16 * draws * rows * p + 4 * 5 * 2 * draws * p
    raise ValueError(f"kind must be 'pairs' or 'observations', got {kind!r}")


def finish_scores(
    context: ScoringContext, observations: list[ObservationScores], pairs: list[PairStats]
) -> xr.Dataset:
    """One replicate's scores from its blocks: the per-observation scores joined, and every
    other score computed from the joined draws and pair statistics (L-C2ST, SBC p-values,
    TARP, coverage, recovery).

    Parameters
    ----------
    context : ScoringContext
        From :func:`inference.scores.scoring_context`, for all observations and test pairs.
    observations : list of ObservationScores
        Blocks that tile the observations (any order).
    pairs : list of PairStats
        Blocks that tile the test pairs (any order).

    Returns
    -------
    scores : xarray.Dataset
        As :func:`inference.scores.score_posterior`.
    """
    observations = sorted(observations, key=lambda block: block.start)
    draws = np.concatenate([block.draws for block in observations], axis=1)
    joined = PairStats.concat(pairs)
    if draws.shape[1] != len(context.x_obs) or len(joined.ranks) != len(context.theta_test):
        raise ValueError(
            f"blocks cover {draws.shape[1]} of {len(context.x_obs)} observations and "
            f"{len(joined.ranks)} of {len(context.theta_test)} test pairs"
        )
    context.use_blocks(draws, joined)
    variables = {}
    for spec in SCORES:
        if not spec.applies_to(context):
            continue
        if spec.per_observation:
            value = np.concatenate([block.values[spec.name] for block in observations])
        else:
            value = spec.compute(context)  # type: ignore[misc]
        variables[spec.name] = (spec.dims, value)
    return xr.Dataset(
        variables,
        coords={
            "observation": np.arange(len(context.x_obs), dtype=np.int64),
            "test_pair": np.arange(len(context.x_test), dtype=np.int64),
            "param": np.array(list(context.posterior.prior.names), dtype=object),
            "alpha": context.tarp["alpha"],
            "credibility": CREDIBILITY,
        },
        attrs=_attrs(context),
    )


def _attrs(context: ScoringContext) -> dict[str, Any]:
    posterior = context.posterior
    return {
        "format": SCORES_FORMAT,
        "seed": context.seed,
        "method": posterior.method,
        "n_posterior_samples": context.n_posterior_samples,
        "n_sbc_samples": context.n_sbc_samples,
        "c2st_classifier": "batched torch MLP (2 x 10 * n_params ReLU), early stopping",
        "c2st_folds": C2ST_FOLDS,
        "mmd_kernel": "Gaussian, median-heuristic bandwidth, z-scored by the reference draws",
        "lc2st_null_trials": context.n_lc2st_null,
        "sbc_test": "Kolmogorov-Smirnov on jittered ranks (rank + U(0,1)) / (n_sbc_samples + 1)",
        "method_settings": posterior.settings,
        "prior": posterior.prior.model_dump(mode="json"),
        "training": {
            key: value
            for key, value in posterior.training.to_dict().items()
            if key not in ("training_loss", "validation_loss")
        },
    }
