"""Posterior quality predicted from measured emulator error, with its cross-validated error.

Measuring a level's emulator error costs no posterior; scoring a posterior costs its training.
So a study scores a few *anchor* levels, fits a monotone predictor of the quality score from the
emulator error on them, and predicts the others (``emustudy plan``). :func:`predict_quality`
gives, for each candidate level, the prediction and an interval whose half-width is
``width`` times the root-mean-square leave-one-level-out (LOLO) error of the predictor.

Why isotonic regression, interpolated linearly: the relation is monotone by assumption (a
worse emulator does not give a better posterior) but its shape is not known (the score saturates
near the ceiling and at chance), and with three to five anchors a parametric curve would spend
the few points on its parameters, leaving nothing to cross-validate with. The isotonic fit has
no parameters; between fitted anchors it is interpolated linearly, outside them it stays flat
(no extrapolated trend), which is why anchors are picked at both ends of the measured error
range. LOLO refits on all anchors but one and predicts the one left out; at an end of the range
that is a flat extrapolation, so the LOLO error is pessimistic for candidates between anchors.

:func:`knob_crossing` turns predicted curves into the knob value where the quality crosses a
target, with the interval that the predicted band's crossings span.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from inference.dose_response import crossing, isotonic_fit
from simulators.errors import ConfigError

__all__ = [
    "MIN_ANCHORS",
    "QualityPrediction",
    "knob_crossing",
    "lolo_residuals",
    "predict_from_anchors",
    "predict_quality",
]

MIN_ANCHORS = 3
"""Fewest anchor levels: leaving one out must leave two to fit."""


@dataclass(frozen=True)
class QualityPrediction:
    """Predicted quality of candidate levels from their emulator error.

    Attributes
    ----------
    predicted, low, high : (n_candidates,)
        The prediction and its interval, ``predicted -/+ width * lolo_rmse``.
    lolo_residuals : (n_anchors,)
        Prediction minus measured quality of each anchor, predicted without it.
    lolo_rmse : float
        Root mean square of ``lolo_residuals``.
    width : float
        Multiple of ``lolo_rmse`` the interval spans on each side.
    increasing : bool
        Whether quality score grows with emulator error.
    """

    predicted: np.ndarray
    low: np.ndarray
    high: np.ndarray
    lolo_residuals: np.ndarray
    lolo_rmse: float
    width: float
    increasing: bool


def _check(anchor_error: np.ndarray, anchor_quality: np.ndarray) -> None:
    if anchor_error.shape != anchor_quality.shape or anchor_error.ndim != 1:
        raise ConfigError(
            f"anchor_error and anchor_quality must both be (n_anchors,), got "
            f"{anchor_error.shape} and {anchor_quality.shape}"
        )
    if anchor_error.size < MIN_ANCHORS:
        raise ConfigError(
            f"predicting quality needs at least {MIN_ANCHORS} scored anchor levels (one is "
            f"left out to cross-validate), got {anchor_error.size}; score more levels "
            "(`emustudy plan --anchors N`)"
        )
    if not (np.isfinite(anchor_error).all() and np.isfinite(anchor_quality).all()):
        raise ConfigError(
            f"anchor errors {anchor_error.tolist()} and qualities {anchor_quality.tolist()} "
            "must be finite; a level without a measured error or score cannot be an anchor"
        )


def predict_from_anchors(
    anchor_error: np.ndarray, anchor_quality: np.ndarray, error: np.ndarray, increasing: bool
) -> np.ndarray:
    """The isotonic fit of quality on error at the anchors, evaluated at ``error``.

    Parameters
    ----------
    anchor_error, anchor_quality : (n_anchors,)
    error : (n,)
    increasing : bool

    Returns
    -------
    predicted : (n,)
        Linear between the fitted anchors, flat beyond the smallest and largest anchor error.
    """
    order = np.argsort(anchor_error, kind="stable")
    knob, fitted = isotonic_fit(
        anchor_error[order], anchor_quality[order], np.ones(order.size), increasing
    )
    return np.interp(np.asarray(error, dtype=np.float64), knob, fitted)


def lolo_residuals(
    anchor_error: np.ndarray, anchor_quality: np.ndarray, increasing: bool
) -> np.ndarray:
    """Leave-one-level-out residuals: each anchor predicted from the others, minus measured.

    Parameters
    ----------
    anchor_error, anchor_quality : (n_anchors,)

    Returns
    -------
    residuals : (n_anchors,)
    """
    anchor_error = np.asarray(anchor_error, dtype=np.float64)
    anchor_quality = np.asarray(anchor_quality, dtype=np.float64)
    _check(anchor_error, anchor_quality)
    residuals = np.empty(anchor_error.size)
    for i in range(anchor_error.size):
        keep = np.arange(anchor_error.size) != i
        guess = predict_from_anchors(
            anchor_error[keep], anchor_quality[keep], anchor_error[i : i + 1], increasing
        )
        residuals[i] = guess[0] - anchor_quality[i]
    return residuals


def predict_quality(
    anchor_error: np.ndarray,
    anchor_quality: np.ndarray,
    error: np.ndarray,
    *,
    increasing: bool = True,
    width: float = 2.0,
) -> QualityPrediction:
    """Predict quality at ``error`` from the anchors, with an interval from the LOLO error.

    Parameters
    ----------
    anchor_error : (n_anchors,)
        Measured emulator error of each anchor level.
    anchor_quality : (n_anchors,)
        Its measured quality score (mean over replicates and observations).
    error : (n_candidates,)
        Measured emulator error of each candidate level.
    increasing : bool
        True when the quality score grows with emulator error (a lower-is-better score such
        as C2ST); False for a higher-is-better score.
    width : float
        Half-width of the interval in LOLO root-mean-square errors (2: about 95 % if the
        residuals were Gaussian).

    Returns
    -------
    prediction : QualityPrediction

    Raises
    ------
    ConfigError
        With fewer than :data:`MIN_ANCHORS` anchors, non-finite anchors or mismatched shapes.
    """
    anchor_error = np.asarray(anchor_error, dtype=np.float64)
    anchor_quality = np.asarray(anchor_quality, dtype=np.float64)
    residuals = lolo_residuals(anchor_error, anchor_quality, increasing)
    rmse = float(np.sqrt(np.mean(residuals**2)))
    predicted = predict_from_anchors(anchor_error, anchor_quality, error, increasing)
    return QualityPrediction(
        predicted=predicted,
        low=predicted - width * rmse,
        high=predicted + width * rmse,
        lolo_residuals=residuals,
        lolo_rmse=rmse,
        width=float(width),
        increasing=bool(increasing),
    )


def knob_crossing(
    knob: np.ndarray, mean: np.ndarray, low: np.ndarray, high: np.ndarray, target: float
) -> tuple[float, float, float]:
    """Where a predicted quality curve over a knob crosses ``target``, with an interval.

    Each of ``mean``, ``low`` and ``high`` is fitted isotonically against the knob (the
    direction from Spearman's rho of ``mean``, as :func:`inference.dose_response.
    dose_response` does) and its crossing taken by linear interpolation; the interval spans
    the crossings of ``low`` and ``high``.

    Parameters
    ----------
    knob : (n_levels,)
        Distinct knob values (any order).
    mean, low, high : (n_levels,)
    target : float

    Returns
    -------
    crossing, crossing_low, crossing_high : float
        ``-inf`` / ``inf`` where a curve is past the target everywhere / nowhere in range.
    """
    order = np.argsort(np.asarray(knob, dtype=np.float64))
    x = np.asarray(knob, dtype=np.float64)[order]
    curves = [np.asarray(c, dtype=np.float64)[order] for c in (mean, low, high)]
    rho = float(stats.spearmanr(x, curves[0])[0]) if np.ptp(curves[0]) > 0 else np.nan
    increasing = not (rho < 0)
    found = []
    for curve in curves:
        unique, fitted = isotonic_fit(x, curve, np.ones(x.size), increasing)
        found.append(crossing(unique, fitted, target, increasing))
    point, *band = found
    return float(point), float(min(band)), float(max(band))
