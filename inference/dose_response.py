"""Dose-response: a posterior score against a knob, with bootstrap intervals and a target crossing.

Given, for each level of a sweep, the knob's value (or the level's measured emulator error) and
the score of every replicate posterior at every observation, :func:`dose_response` gives

* the per-level mean score with a percentile bootstrap interval;
* a monotone fit of the means against the knob, by isotonic regression;
* the knob value where the fitted curve crosses a ``quality_target``, with a bootstrap interval
  and the share of bootstrap fits that cross inside the swept range.

Why isotonic regression: the question is monotone by design (more simplification should not
make a posterior better), but the shape is not known: scores saturate near the ceiling (C2ST
at 0.5) and at chance, and may stay flat and then fall off a cliff. Isotonic regression
assumes only the direction, has no parameters to choose, cannot overshoot between levels, and
is fitted in closed form (pool adjacent violators, sklearn's ``isotonic_regression``), so
refitting it on a thousand bootstrap resamples costs little. A parametric curve (logistic,
power law) would give a smoother crossing, but its interval would reflect the chosen shape as
much as the data.

The bootstrap resamples observations with one set of indices shared by all levels (the levels
are scored on the same observations, so their scores are paired) and replicates independently
per level (each level trains its own posteriors), then refits the curve and the crossing on
every resample; the direction of the fit is chosen once, from the full data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats
from sklearn.isotonic import isotonic_regression

from simulators.errors import ConfigError

__all__ = ["MIN_TREND_LEVELS", "DoseResponse", "crossing", "dose_response", "isotonic_fit"]

MIN_TREND_LEVELS = 4
"""Fewest levels (with a finite score) a trend is stated from; three points make no curve."""


@dataclass(frozen=True)
class DoseResponse:
    """A score against a knob: per-level means, a monotone fit and its crossing of a target.

    Attributes
    ----------
    knob : (n_levels,)
        The knob's values, sorted increasing (levels without a finite score left out).
    mean, low, high : (n_levels,)
        Mean score over replicates and observations, and its bootstrap interval.
    fitted : (n_levels,)
        The isotonic fit of ``mean`` at ``knob``.
    increasing : bool
        Direction of the fit.
    spearman_rho : float
        Spearman's rank correlation of ``mean`` with ``knob``.
    target : float
        The quality target.
    crossing : float
        Knob value at which the fit reaches ``target``; NaN when it does not within the range.
    crossing_low, crossing_high : float
        Bootstrap interval of the crossing; ``-inf``/``inf`` when more than its tail share of
        bootstrap fits reach the target only outside the swept range (below its smallest or
        beyond its largest value); NaN when ``crossing`` is NaN.
    crossing_share : float
        Share of bootstrap fits that cross the target inside the swept range.
    n_boot : int
    confidence : float
    """

    knob: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    fitted: np.ndarray
    increasing: bool
    spearman_rho: float
    target: float
    crossing: float
    crossing_low: float
    crossing_high: float
    crossing_share: float
    n_boot: int
    confidence: float


def isotonic_fit(
    knob: np.ndarray, mean: np.ndarray, weight: np.ndarray, increasing: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted isotonic regression of ``mean`` on ``knob`` (pool adjacent violators).

    Parameters
    ----------
    knob : (n_levels,)
        Sorted increasing; ties (e.g. two levels with one measured error) are pooled first.
    mean, weight : (n_levels,)
        Finite values; ``weight`` > 0 (e.g. the number of finite scores behind each mean).
    increasing : bool

    Returns
    -------
    unique_knob : (n_unique,)
    fitted : (n_unique,)
        The fit at each distinct knob value.
    """
    unique, where = np.unique(knob, return_inverse=True)
    total = np.bincount(where, weights=weight)
    pooled = np.bincount(where, weights=weight * mean) / total
    return unique, isotonic_regression(pooled, sample_weight=total, increasing=increasing)


def crossing(
    knob: np.ndarray, fitted: np.ndarray, target: float, increasing: bool, log_knob: bool = False
) -> float:
    """Smallest knob value where the piecewise-linear fit reaches ``target``.

    Parameters
    ----------
    knob : (n_levels,)
        Sorted increasing.
    fitted : (n_levels,)
        Monotone in the direction ``increasing``.
    target : float
    increasing : bool
    log_knob : bool
        Interpolate linearly in ``log10(knob)`` (for knobs swept on a log scale).

    Returns
    -------
    x : float
        The crossing; ``-inf`` if the fit is past the target already at the smallest knob
        value, ``inf`` if it never reaches it within the range.
    """
    sign = 1.0 if increasing else -1.0
    g, t = sign * np.asarray(fitted, dtype=np.float64), sign * target
    reached = np.flatnonzero(g >= t)
    if reached.size == 0:
        return float(np.inf)
    i = int(reached[0])
    if i == 0:
        return float(knob[0]) if g[0] == t else float(-np.inf)
    x = np.log10(knob) if log_knob else np.asarray(knob, dtype=np.float64)
    at = x[i - 1] + (t - g[i - 1]) / (g[i] - g[i - 1]) * (x[i] - x[i - 1])
    return float(10.0**at if log_knob else at)


def _level_means(
    scores: np.ndarray, rng: np.random.Generator, n_boot: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Means (L,), finite counts (L,) and bootstrap means (n_boot, L) of scores (L, R, O)."""
    n_levels, n_rep, n_obs = scores.shape
    finite = np.isfinite(scores)
    values = np.where(finite, scores, 0.0)
    counts = finite.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = values.sum(axis=(1, 2)) / counts
    obs = rng.integers(0, n_obs, size=(n_boot, n_obs))  # shared: levels are paired
    boot = np.empty((n_boot, n_levels))
    for level in range(n_levels):
        reps = rng.integers(0, n_rep, size=(n_boot, n_rep))  # own: independent trainings
        picked = reps[:, :, None], obs[:, None, :]
        total = values[level][picked].sum(axis=(1, 2))
        count = finite[level][picked].sum(axis=(1, 2))
        with np.errstate(invalid="ignore", divide="ignore"):
            boot[:, level] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return mean, counts, boot


def _usable(knob: np.ndarray, scores: np.ndarray, log_knob: bool) -> np.ndarray:
    """The levels with a finite score, sorted by knob (indices); raise on unusable input."""
    if knob.ndim != 1 or scores.ndim != 3 or scores.shape[0] != knob.shape[0]:
        raise ConfigError(
            f"knob must be (n_levels,) and scores (n_levels, n_replicates, n_observations), got "
            f"{knob.shape} and {scores.shape}; stack each level's score table along axis 0"
        )
    if not np.all(np.isfinite(knob)):
        raise ConfigError(f"knob values must be finite, got {knob.tolist()}")
    keep = np.flatnonzero(np.isfinite(scores).any(axis=(1, 2)))
    if keep.size < MIN_TREND_LEVELS:
        raise ConfigError(
            f"a dose-response needs at least {MIN_TREND_LEVELS} levels with a finite score, got "
            f"{keep.size} of {knob.size}; a trend from fewer points is not stated. Sweep "
            "more values (a `sweep:` ladder entry) or check why levels have no score"
        )
    if log_knob and np.any(knob[keep] <= 0):
        raise ConfigError(f"log_knob needs knob values > 0, got {knob[keep].tolist()}")
    return keep[np.argsort(knob[keep], kind="stable")]


def dose_response(
    knob: np.ndarray,
    scores: np.ndarray,
    target: float,
    *,
    increasing: bool | None = None,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    log_knob: bool = False,
) -> DoseResponse:
    """Per-level means with bootstrap intervals, an isotonic fit, and its crossing of ``target``.

    Parameters
    ----------
    knob : (n_levels,)
        The knob's value per level (or the level's measured emulator error); ties allowed.
    scores : (n_levels, n_replicates, n_observations)
        One score per replicate posterior and observation; NaN where missing.
    target : float
        The quality target (``report.quality_target``).
    increasing : bool, optional
        Direction of the fit; by default the sign of Spearman's rho of the means (increasing
        when rho is 0 or undefined).
    n_boot : int
        Bootstrap resamples.
    confidence : float
        Coverage of the percentile intervals.
    seed : int
        Seeds the bootstrap: equal inputs give equal outputs.
    log_knob : bool
        Interpolate the crossing in ``log10(knob)`` (knob values must be > 0).

    Returns
    -------
    curve : DoseResponse

    Raises
    ------
    ConfigError
        On shapes that do not match, or fewer than :data:`MIN_TREND_LEVELS` levels with a
        finite score (no trend is stated from three points).
    """
    knob = np.asarray(knob, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    use = _usable(knob, scores, log_knob)
    knob, scores = knob[use], scores[use]
    mean, counts, boot = _level_means(scores, np.random.default_rng(seed), n_boot)
    rho = float(stats.spearmanr(knob, mean)[0]) if np.ptp(mean) > 0 else np.nan
    if increasing is None:
        increasing = not (rho < 0)
    unique, fitted = isotonic_fit(knob, mean, counts, increasing)
    point = crossing(unique, fitted, target, increasing, log_knob)
    alpha = (1.0 - confidence) / 2.0
    low, high, share = _crossing_interval(knob, boot, counts, target, increasing, log_knob, alpha)
    if not np.isfinite(point):
        point, low, high = np.nan, np.nan, np.nan
    mean_low, mean_high = np.nanquantile(boot, [alpha, 1.0 - alpha], axis=0)
    return DoseResponse(
        knob=knob,
        mean=mean,
        low=mean_low,
        high=mean_high,
        fitted=fitted[np.searchsorted(unique, knob)],
        increasing=bool(increasing),
        spearman_rho=rho,
        target=float(target),
        crossing=float(point),
        crossing_low=float(low),
        crossing_high=float(high),
        crossing_share=share,
        n_boot=n_boot,
        confidence=confidence,
    )


def _crossing_interval(
    knob: np.ndarray,
    boot: np.ndarray,
    counts: np.ndarray,
    target: float,
    increasing: bool,
    log_knob: bool,
    alpha: float,
) -> tuple[float, float, float]:
    """Percentile interval of the refitted crossing over bootstrap means ``boot`` (B, L).

    A fit past the target everywhere counts as ``-inf``, one short of it everywhere as ``inf``
    (the crossing lies outside the swept range); resamples that kept fewer than 2 levels with a
    score are left out. Returns ``(low, high, share crossing inside the range)``.
    """
    crossings = np.full(len(boot), np.nan)
    for b, mean in enumerate(boot):
        ok = np.isfinite(mean)
        if ok.sum() >= 2:
            unique, fitted = isotonic_fit(knob[ok], mean[ok], counts[ok], increasing)
            crossings[b] = crossing(unique, fitted, target, increasing, log_knob)
    share = float(np.isfinite(crossings).mean())
    kept = crossings[~np.isnan(crossings)]
    if kept.size == 0:
        return np.nan, np.nan, share
    low, high = np.quantile(kept, [alpha, 1.0 - alpha], method="inverted_cdf")
    return float(low), float(high), share
