"""Quality predicted from emulator error: isotonic on anchors, LOLO error, knob crossing."""

from __future__ import annotations

import numpy as np
import pytest

from inference.quality_prediction import (
    knob_crossing,
    lolo_residuals,
    predict_from_anchors,
    predict_quality,
)
from simulators.errors import ConfigError


def test_the_fit_interpolates_between_anchors_and_stays_flat_beyond_them():
    error = np.array([1.0, 2.0, 3.0])
    quality = np.array([0.5, 0.7, 0.9])
    found = predict_from_anchors(error, quality, np.array([0.0, 1.5, 2.5, 9.0]), increasing=True)
    np.testing.assert_allclose(found, [0.5, 0.6, 0.8, 0.9])
    # a violation is pooled, never followed: the fit stays monotone
    bumpy = predict_from_anchors(error, np.array([0.5, 0.9, 0.7]), error, increasing=True)
    np.testing.assert_allclose(bumpy, [0.5, 0.8, 0.8])


def test_lolo_residuals_predict_each_anchor_from_the_others():
    error = np.array([1.0, 2.0, 3.0, 4.0])
    quality = np.array([0.5, 0.6, 0.8, 0.9])
    # leaving out 1: flat at 0.6 -> +0.1; 2: halfway 0.5..0.8 -> 0.65 -> +0.05;
    # 3: halfway 0.6..0.9 -> 0.75 -> -0.05; 4: flat at 0.8 -> -0.1
    np.testing.assert_allclose(
        lolo_residuals(error, quality, increasing=True), [0.1, 0.05, -0.05, -0.1], atol=1e-12
    )


def test_the_interval_covers_held_out_levels_of_a_noisy_monotone_relation():
    """A C2ST-like quality falling from 0.95 to 0.5 with the error, measured with noise: from
    5 anchors, twice the LOLO error covers the truth at most of the 11 other levels with a
    band narrower than the range; fitted in the wrong direction, the LOLO error exposes it."""
    rng = np.random.default_rng(3)
    error = np.sort(rng.uniform(0.0, 3.0, 16))
    truth = 0.5 + 0.45 / (1 + np.exp(-3 * (error - 1.5)))
    measured = truth + 0.02 * rng.standard_normal(error.size)
    anchors = np.round(np.linspace(0, error.size - 1, 5)).astype(int)
    others = np.setdiff1d(np.arange(error.size), anchors)
    found = predict_quality(error[anchors], measured[anchors], error[others], increasing=True)
    covered = (found.low <= truth[others]) & (truth[others] <= found.high)
    assert covered.mean() >= 0.9
    assert np.abs(found.predicted - truth[others]).max() < 0.06  # the quality spans 0.45
    assert 0.0 < found.lolo_rmse < 0.1
    wrong = predict_quality(error[anchors], measured[anchors], error[others], increasing=False)
    assert wrong.lolo_rmse > 2.5 * found.lolo_rmse


def test_too_few_or_non_finite_anchors_are_refused_with_the_fix():
    with pytest.raises(ConfigError, match=r"at least 3 scored anchor levels.*--anchors N"):
        predict_quality(np.array([1.0, 2.0]), np.array([0.5, 0.6]), np.array([1.5]))
    with pytest.raises(ConfigError, match=r"must be finite"):
        predict_quality(np.array([1.0, np.nan, 3.0]), np.array([0.5, 0.6, 0.7]), np.ones(1))


def test_the_knob_crossing_and_its_band():
    knob = np.array([100.0, 200.0, 400.0, 800.0])
    mean = np.array([0.8, 0.7, 0.6, 0.55])  # C2ST falls with the training runs
    point, low, high = knob_crossing(knob, mean, mean - 0.05, mean + 0.05, target=0.65)
    assert point == pytest.approx(300.0)
    assert low == pytest.approx(200.0) and high == pytest.approx(400.0)
    # a band never reaching the target within the range is an infinite bound
    _, low, high = knob_crossing(knob, mean, mean - 0.2, mean + 0.2, target=0.65)
    assert low == -np.inf and high == np.inf
