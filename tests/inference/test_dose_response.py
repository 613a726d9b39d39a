"""Dose-response curves recover a known crossing, with intervals that shrink with replicates."""

from __future__ import annotations

import numpy as np
import pytest

from inference.dose_response import crossing, dose_response, isotonic_fit
from simulators.errors import ConfigError

KNOB = np.arange(8.0)


def _scores(slope: float, replicates: int, seed: int, intercept: float = 0.5) -> np.ndarray:
    """score = intercept + slope * knob + N(0, 0.05), shape (8, replicates, 10)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, 0.05, size=(KNOB.size, replicates, 10))
    return intercept + slope * KNOB[:, None, None] + noise


def test_the_known_crossing_is_found_and_covered_and_more_replicates_narrow_it():
    few = dose_response(KNOB, _scores(0.05, 3, seed=1), 0.7, seed=0)
    many = dose_response(KNOB, _scores(0.05, 30, seed=2), 0.7, seed=0)
    for curve in (few, many):
        assert curve.increasing and curve.spearman_rho == pytest.approx(1.0)
        assert curve.crossing == pytest.approx(4.0, abs=0.25)
        assert curve.crossing_low < 4.0 < curve.crossing_high
        assert curve.crossing_share == 1.0
        assert np.all(np.diff(curve.fitted) >= 0)
        assert np.all((curve.low <= curve.mean) & (curve.mean <= curve.high))
    few_width = few.crossing_high - few.crossing_low
    many_width = many.crossing_high - many.crossing_low
    assert many_width < 0.7 * few_width  # 0.50 measured; 10x the replicates
    assert few_width < 1.5  # an interval, not the whole range


def test_the_interval_covers_the_true_crossing_in_most_repeated_experiments():
    covered = 0
    for seed in range(20):
        curve = dose_response(KNOB, _scores(0.05, 3, seed=100 + seed), 0.7, n_boot=200, seed=seed)
        covered += curve.crossing_low <= 4.0 <= curve.crossing_high
    assert covered >= 17  # nominal 95%; a binomial(20, 0.95) falls below 17 in 1.6% of cases


def test_level_means_have_intervals_that_cover_the_truth_and_the_bootstrap_is_seeded():
    scores = _scores(0.05, 5, seed=3)
    curve = dose_response(KNOB, scores, 0.7, seed=7)
    truth = 0.5 + 0.05 * KNOB
    assert np.mean((curve.low <= truth) & (truth <= curve.high)) >= 0.75
    np.testing.assert_allclose(curve.mean, scores.mean(axis=(1, 2)))
    again = dose_response(KNOB, scores, 0.7, seed=7)
    assert (again.crossing_low, again.crossing_high) == (curve.crossing_low, curve.crossing_high)
    other = dose_response(KNOB, scores, 0.7, seed=8)
    assert (other.crossing_low, other.crossing_high) != (curve.crossing_low, curve.crossing_high)


def test_a_curve_that_never_reaches_the_target_reports_no_crossing():
    curve = dose_response(KNOB, _scores(0.05, 3, seed=4), 0.95)
    assert np.isnan(curve.crossing)
    assert np.isnan(curve.crossing_low) and np.isnan(curve.crossing_high)
    assert curve.crossing_share == 0.0


def test_a_decreasing_score_is_fitted_downwards_and_crosses_where_expected():
    scores = _scores(-0.05, 5, seed=5, intercept=0.9)  # reaches 0.7 at knob 4
    curve = dose_response(KNOB, scores, 0.7)
    assert not curve.increasing and curve.spearman_rho == pytest.approx(-1.0)
    assert np.all(np.diff(curve.fitted) <= 0)
    assert curve.crossing == pytest.approx(4.0, abs=0.25)
    assert curve.crossing_low < 4.0 < curve.crossing_high
    forced = dose_response(KNOB, scores, 0.7, increasing=True)  # the wrong direction: flat fit
    assert np.ptp(forced.fitted) == pytest.approx(0.0, abs=1e-12)


def test_levels_without_a_score_drop_out_and_fewer_than_four_are_refused():
    scores = _scores(0.05, 3, seed=6)[:5]
    scores[2] = np.nan
    scores[0, 0, :4] = np.nan  # a partly missing level keeps its finite scores
    curve = dose_response(KNOB[:5], scores, 0.6)
    np.testing.assert_array_equal(curve.knob, [0.0, 1.0, 3.0, 4.0])
    assert curve.mean[0] == pytest.approx(np.nanmean(scores[0]))
    with pytest.raises(ConfigError, match=r"at least 4 levels with a finite score, got 3 of 4"):
        dose_response(KNOB[:4], scores[:4], 0.6)
    with pytest.raises(ConfigError, match=r"scores \(n_levels, n_replicates, n_observations\)"):
        dose_response(KNOB, scores[:, 0], 0.6)


def test_tied_knob_values_share_one_fitted_value_and_levels_may_come_unsorted():
    error = np.array([0.3, 0.1, 0.2, 0.2, 0.4])  # e.g. measured emulator errors
    scores = (0.5 + error)[:, None, None] + np.zeros((5, 2, 3))
    scores[2] += 0.02
    scores[3] -= 0.02
    curve = dose_response(error, scores, 0.75)
    np.testing.assert_allclose(curve.knob, [0.1, 0.2, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(curve.fitted, [0.6, 0.7, 0.7, 0.8, 0.9], atol=1e-12)
    assert curve.crossing == pytest.approx(0.25)


def test_crossing_interpolates_and_says_when_the_target_lies_outside_the_range():
    knob, fitted = np.array([1.0, 10.0, 100.0]), np.array([0.5, 0.6, 0.9])
    assert crossing(knob, fitted, 0.75, increasing=True) == pytest.approx(55.0)
    assert crossing(knob, fitted, 0.75, increasing=True, log_knob=True) == pytest.approx(10**1.5)
    assert crossing(knob, fitted, 0.4, increasing=True) == -np.inf
    assert crossing(knob, fitted, 0.5, increasing=True) == 1.0
    assert crossing(knob, fitted, 0.95, increasing=True) == np.inf
    assert crossing(knob, fitted[::-1], 0.55, increasing=False) == pytest.approx(55.0)


def test_isotonic_fit_pools_violators_with_their_weights():
    knob = np.array([0.0, 1.0, 2.0, 3.0])
    unique, fitted = isotonic_fit(
        knob, np.array([0.1, 0.5, 0.3, 0.9]), np.array([1, 1, 3, 1.0]), True
    )
    np.testing.assert_array_equal(unique, knob)
    np.testing.assert_allclose(fitted, [0.1, 0.35, 0.35, 0.9])


def test_a_crossing_at_the_edge_of_the_range_gets_an_open_interval():
    curve = dose_response(KNOB, _scores(0.05, 3, seed=9), 0.51)  # true crossing at knob 0.2
    assert 0.0 < curve.crossing < 1.0
    assert curve.crossing_low == -np.inf  # many resamples are past 0.51 already at knob 0
    assert 0.0 < curve.crossing_high < 1.5
    assert 0.3 < curve.crossing_share < 0.95
