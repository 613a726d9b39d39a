"""The link the research question asks for: posterior scores against measured emulator error.

For each score (one value per level, e.g. the mean C2ST over observations and replicates) and
each measured emulator error (one value per level), :func:`score_trends` gives Spearman's rank
correlation and a least-squares line ``score = intercept + slope * error``, so a report can say
"posterior C2ST rises by <slope> per unit of emulator error".
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy import stats

from simulators.errors import ConfigError

__all__ = ["MIN_TREND_LEVELS", "fit_trend", "score_trends"]

MIN_TREND_LEVELS = 4
"""Fewest levels a trend is stated from (three points make any monotone curve look perfect)."""

_BOOTSTRAP = 1000


def fit_trend(error: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """Spearman's rho and a least-squares slope of ``score`` against ``error``.

    Parameters
    ----------
    error : (n_levels,)
    score : (n_levels,)
        Pairs with a non-finite value are left out.

    Returns
    -------
    trend : dict
        ``spearman_rho``, ``spearman_pvalue``, ``slope``, ``intercept`` and ``n_levels`` (pairs
        used); NaN where fewer than 3 pairs (rho) or 2 distinct errors (slope) remain.
        ``slope_low`` and ``slope_high``: the 95 % bootstrap interval of the slope over levels
        (pairs resampled with replacement, fixed seed), NaN below :data:`MIN_TREND_LEVELS`.
    """
    error = np.asarray(error, dtype=np.float64)
    score = np.asarray(score, dtype=np.float64)
    if error.shape != score.shape or error.ndim != 1:
        raise ConfigError(
            f"error and score must be two (n_levels,) arrays, got {error.shape} and {score.shape}"
        )
    keep = np.isfinite(error) & np.isfinite(score)
    error, score = error[keep], score[keep]
    result = {
        "spearman_rho": np.nan,
        "spearman_pvalue": np.nan,
        "slope": np.nan,
        "intercept": np.nan,
        "n_levels": float(len(error)),
        "slope_low": np.nan,
        "slope_high": np.nan,
    }
    if len(error) >= 3 and np.ptp(error) > 0 and np.ptp(score) > 0:
        rho = stats.spearmanr(error, score)
        result["spearman_rho"], result["spearman_pvalue"] = float(rho[0]), float(rho[1])
    if len(error) >= 2 and np.ptp(error) > 0:
        slope, intercept = np.polyfit(error, score, 1)
        result["slope"], result["intercept"] = float(slope), float(intercept)
    if len(error) >= MIN_TREND_LEVELS and np.ptp(error) > 0:
        result["slope_low"], result["slope_high"] = _bootstrap_slope(error, score)
    return result


def _bootstrap_slope(error: np.ndarray, score: np.ndarray) -> tuple[float, float]:
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(error), size=(_BOOTSTRAP, len(error)))
    slopes = [
        np.polyfit(error[pick], score[pick], 1)[0] for pick in picks if np.ptp(error[pick]) > 0
    ]
    low, high = np.percentile(slopes, [2.5, 97.5])
    return float(low), float(high)


def score_trends(scores: xr.Dataset, errors: xr.Dataset) -> xr.Dataset:
    """Trend of every per-level score against every per-level emulator error.

    Parameters
    ----------
    scores : xarray.Dataset
        Variables with a ``level`` dim; each is averaged over its other dims.
    errors : xarray.Dataset
        Variables with a ``level`` dim (e.g. ``nll``, ``c2st``, ``mmd``); the levels are matched
        by name, so levels without a measured error (the ceiling) drop out.

    Returns
    -------
    trends : xarray.Dataset
        ``spearman_rho``, ``spearman_pvalue``, ``slope``, ``intercept``, ``n_levels``, each
        ``(score, error)``.
    """
    levels = [level for level in scores["level"].values if level in set(errors["level"].values)]
    score_names = [n for n in scores.data_vars if "level" in scores[n].dims]
    error_names = [n for n in errors.data_vars if "level" in errors[n].dims]
    fields = (
        "spearman_rho",
        "spearman_pvalue",
        "slope",
        "intercept",
        "n_levels",
        "slope_low",
        "slope_high",
    )
    table = {f: np.full((len(score_names), len(error_names)), np.nan) for f in fields}
    for i, s in enumerate(score_names):
        other = [d for d in scores[s].dims if d != "level"]
        score = scores[s].sel(level=levels).astype(float).mean(dim=other).values
        for j, e in enumerate(error_names):
            other_e = [d for d in errors[e].dims if d != "level"]
            error = errors[e].sel(level=levels).astype(float).mean(dim=other_e).values
            for field, value in fit_trend(error, score).items():
                table[field][i, j] = value
    return xr.Dataset(
        {f: (("score", "error"), v) for f, v in table.items()},
        coords={"score": score_names, "error": error_names},
        attrs={"levels": [str(level) for level in levels]},
    )
