"""Every score against a case with a known answer: identical distributions and a known shift."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xarray as xr
from scipy import stats

from inference import (
    ExactReference,
    ObservationModel,
    c2st,
    detection_rate,
    finite_pairs,
    fit_trend,
    hpd_coverage,
    lc2st,
    logprob_misspecification,
    mmd,
    mmd_permutation_pvalue,
    predictive_distance,
    ranks_from_draws,
    recovery,
    score_trends,
    stack_replicates,
    tarp,
)
from simulators import ConfigError, make_simulator


def exact_draws(problem, x: np.ndarray, n: int, seed: int, shift: float = 0.0) -> np.ndarray:
    """``(n, len(x), p)`` exact posterior draws at each row of ``x``, optionally shifted."""
    reference = ExactReference(problem.sim).sample(x, n, seed)
    return np.moveaxis(reference, 0, 1) + shift


@pytest.mark.parametrize("shift", [0.0, 1.0, 2.0])
def test_fast_c2st_matches_the_bayes_accuracy_of_shifted_gaussians(shift: float) -> None:
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((4000, 1)), shift + rng.standard_normal((4000, 1))
    expected = stats.norm.cdf(shift / 2)  # Phi(d / 2)
    assert c2st(a, b, seed=1) == pytest.approx(expected, abs=0.025)


def test_fast_c2st_is_seeded_and_leaves_torch_alone() -> None:
    import torch

    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((500, 3)), 0.5 + rng.standard_normal((500, 3))
    state = torch.random.get_rng_state()
    assert c2st(a, b, seed=3) == c2st(a, b, seed=3)
    assert torch.equal(state, torch.random.get_rng_state())


def test_mmd_matches_the_closed_form_for_gaussians() -> None:
    rng = np.random.default_rng(2)
    p, s2, ell, shift = 2, 1.0, 1.5, 1.0
    a, b = rng.standard_normal((3000, p)), shift + rng.standard_normal((3000, p))
    mu2 = p * shift**2
    expected = (
        2 * (ell**2 / (ell**2 + 2 * s2)) ** (p / 2) * (1 - math.exp(-mu2 / (2 * (ell**2 + 2 * s2))))
    )
    assert mmd(a, b, bandwidth=ell, standardise=False) == pytest.approx(expected, abs=0.01)
    assert abs(mmd(a, rng.standard_normal((3000, p)))) < 0.003
    _, p_same = mmd_permutation_pvalue(a[:300], rng.standard_normal((300, p)), seed=0)
    _, p_shift = mmd_permutation_pvalue(a[:300], b[:300], seed=0)
    assert p_same > 0.05 and p_shift < 0.01
    with pytest.raises(ConfigError, match="NaN"):
        mmd(np.full((5, 2), np.nan), a[:5])


def test_calibration_scores_of_exact_and_shifted_posteriors(problem) -> None:
    theta, x = problem.theta_test[:400], problem.x_test[:400]
    exact = exact_draws(problem, x, 200, seed=0)
    biased = exact_draws(problem, x, 200, seed=0, shift=0.3)
    assert stats.kstest(ranks_from_draws(exact, theta)[:, 0] / 200, "uniform").pvalue > 0.01
    good, bad = tarp(exact, theta, seed=0), tarp(biased, theta, seed=0)
    assert good["ks_pvalue"] > 0.01 and abs(good["atc"]) < 0.05
    assert bad["ks_pvalue"] < 1e-3
    np.testing.assert_allclose(good["ecp"], good["alpha"], atol=0.1)
    moved = recovery(biased, theta, np.full(3, 0.1))
    np.testing.assert_allclose(
        recovery(exact, theta, np.full(3, 0.1))["contraction"], 0.5, atol=0.05
    )
    np.testing.assert_allclose(moved["mean_error"], math.sqrt(0.05 + 0.09), atol=0.03)


def test_hpd_coverage_of_a_good_and_an_overconfident_posterior(
    good_posterior, wrong_posterior, problem
) -> None:
    theta, x = problem.theta_test[:300], problem.x_test[:300]
    draws = good_posterior.sample_batched(x, 200, seed=0)
    levels = np.array([0.2, 0.5, 0.8])
    np.testing.assert_allclose(
        hpd_coverage(good_posterior, draws, theta, x, levels), levels, atol=0.08
    )
    narrow = wrong_posterior.sample_batched(x, 200, seed=0)
    assert hpd_coverage(wrong_posterior, narrow, theta, x, levels)[1] < 0.3


def test_lc2st_accepts_the_exact_posterior_and_rejects_a_shifted_one(problem) -> None:
    theta, x = problem.theta_test, problem.x_test
    x_obs = problem.x_test[:3]
    q = exact_draws(problem, x, 1, seed=1)[0]
    at_obs = exact_draws(problem, x_obs, 500, seed=2)
    good = lc2st(theta, x, q, x_obs, at_obs, seed=0, n_null=20)
    bad = lc2st(theta, x, q + 0.3, x_obs, at_obs + 0.3, seed=0, n_null=20)
    assert good.null.shape == (20, 3) and (good.pvalue > 0.05).all()
    assert (bad.pvalue < 0.05).all() and (bad.statistic > good.statistic).all()


def test_misspecification_tests_flag_outliers_only(problem) -> None:
    from inference import mmd_misspecification

    x_train = problem.x
    inside = problem.x_test[:20]
    outside = inside + 1.5  # about 3.5 marginal standard deviations away in every output
    for test in (mmd_misspecification, logprob_misspecification):
        assert detection_rate(test(x_train, inside, seed=0)) <= 0.15
        assert detection_rate(test(x_train, outside, seed=0)) >= 0.9


def test_observation_models() -> None:
    x, std = np.zeros((4, 10)), np.full(10, 2.0)
    assert not ObservationModel().misspecified
    np.testing.assert_array_equal(ObservationModel().apply(x, std, 0), x)
    noisy = ObservationModel(kind="noise", scale=0.5).apply(np.zeros((2000, 10)), std, 0)
    assert noisy.std() == pytest.approx(1.0, rel=0.05)
    bad = ObservationModel(kind="contamination", scale=3.0, fraction=0.2).apply(x, std, 1)
    assert ((bad != 0).sum(axis=1) == 2).all() and np.allclose(np.abs(bad[bad != 0]), 6.0)
    np.testing.assert_array_equal(
        bad, ObservationModel(kind="contamination", scale=3.0, fraction=0.2).apply(x, std, 1)
    )


def test_trend_recovers_a_known_slope() -> None:
    error = np.array([0.0, 1.0, 2.0, 3.0])
    trend = fit_trend(error, 0.5 + 0.1 * error)
    assert trend["slope"] == pytest.approx(0.1) and trend["intercept"] == pytest.approx(0.5)
    assert trend["spearman_rho"] == pytest.approx(1.0)
    levels = ["a", "b", "c", "ceiling"]
    scores = xr.Dataset(
        {
            "c2st": (
                ("level", "observation"),
                np.array([[0.5, 0.5], [0.6, 0.6], [0.8, 0.8], [0.5, 0.5]]),
            )
        },
        coords={"level": levels},
    )
    errors = xr.Dataset({"nll": ("level", [1.0, 2.0, 4.0])}, coords={"level": levels[:3]})
    table = score_trends(scores, errors)
    assert float(table["slope"].sel(score="c2st", error="nll")) == pytest.approx(0.1)
    assert float(table["n_levels"].sel(score="c2st", error="nll")) == 3


def test_predictive_distance_matches_a_direct_computation(problem) -> None:
    x_obs = problem.x_test[:2]
    draws = exact_draws(problem, x_obs, 300, seed=4)
    std = problem.x_test.std(axis=0)
    good = predictive_distance(problem.sim, draws, x_obs, std, seed=0)
    far = predictive_distance(problem.sim, draws + 1.0, x_obs, std, seed=0)
    # x_sim = theta + noise, so the exact posterior's predictive spread is known: recompute it
    rng = np.random.default_rng(0)
    noise = math.sqrt(problem.sim.settings["noise_var"]) * rng.standard_normal(draws.shape)
    direct = np.linalg.norm((draws + noise - x_obs) / std, axis=-1).mean(axis=0) / math.sqrt(3)
    np.testing.assert_allclose(good, direct, rtol=0.1)
    assert (far > good + 0.5).all()


def test_finite_pairs_and_stacking() -> None:
    theta = np.zeros((5, 2))
    x = np.ones((5, 3))
    x[1, 2] = np.nan
    kept_theta, kept_x, n_invalid = finite_pairs(theta, x)
    assert n_invalid == 1 and kept_x.shape == (4, 3) and kept_theta.shape == (4, 2)
    one = xr.Dataset({"c2st": ("observation", [0.5, 0.6])}, attrs={"seed": 1, "training": {}})
    stacked = stack_replicates([one, one], "full")
    assert stacked["c2st"].dims == ("level", "replicate", "observation")
    assert stacked.attrs["level"] == "full" and list(stacked["level"].values) == ["full"]


def test_exact_reference_refuses_models_without_one() -> None:
    with pytest.raises(ConfigError, match="no exact posterior"):
        ExactReference(make_simulator("lorenz96"))
