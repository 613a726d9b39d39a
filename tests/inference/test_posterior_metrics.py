"""C2ST, SBC and NLTP: sanity on known distributions, and on a good and a wrong posterior."""

from __future__ import annotations

import math

import numpy as np
import pytest

from inference import NPEPosterior, c2st, nltp, sbc_ranks, sbc_uniformity_pvalues
from simulators import ConfigError


def exact_nltp(problem, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``-log p(theta_i | x_i)`` under the exact Gaussian posterior, pairwise."""
    mean, var = problem.sim.posterior_moments(x)
    p = theta.shape[1]
    return 0.5 * ((theta - mean) ** 2).sum(axis=1) / var + 0.5 * p * math.log(2 * math.pi * var)


def test_c2st_of_one_distribution_is_chance() -> None:
    rng = np.random.default_rng(0)
    assert c2st(rng.standard_normal((1000, 2)), rng.standard_normal((1000, 2)), seed=0) <= 0.56


def test_c2st_separates_shifted_gaussians() -> None:
    # Bayes accuracy for means sqrt(2) apart at unit variance: Phi(sqrt(2) / 2) = 0.76.
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((1000, 2)), 1.0 + rng.standard_normal((1000, 2))
    assert 0.7 < c2st(a, b, seed=0) < 0.82


def test_c2st_rejects_unequal_samples() -> None:
    with pytest.raises(ConfigError, match="same shape"):
        c2st(np.zeros((100, 2)), np.zeros((90, 2)), seed=0)


def test_sbc_pvalues_are_valid_under_the_null_even_for_coarse_ranks() -> None:
    """With only 11 possible ranks, KS on jittered ranks must still reject ~5% at 5%."""
    rng = np.random.default_rng(2)
    n_samples = 10
    pvalues = np.concatenate(
        [
            sbc_uniformity_pvalues(rng.integers(0, n_samples + 1, size=(100, 2)), n_samples, seed=s)
            for s in range(300)
        ]
    )
    assert 0.03 <= (pvalues < 0.05).mean() <= 0.075
    assert 0.4 <= pvalues.mean() <= 0.6


def test_sbc_pvalues_reject_peaked_ranks() -> None:
    rng = np.random.default_rng(3)
    peaked = np.clip(np.round(100 + 25 * rng.standard_normal((200, 1))), 0, 200).astype(int)
    assert sbc_uniformity_pvalues(peaked, 200)[0] < 1e-6
    with pytest.raises(ConfigError, match="n_samples"):
        sbc_uniformity_pvalues(peaked, 100)


def test_good_posterior_is_calibrated(good_posterior: NPEPosterior, problem) -> None:
    theta, x = problem.theta_test[:200], problem.x_test[:200]
    ranks = sbc_ranks(good_posterior, theta, x, n_samples=200, seed=0)
    assert ranks.shape == (200, 3) and ranks.dtype == np.int64
    assert ranks.min() >= 0 and ranks.max() <= 200
    assert (sbc_uniformity_pvalues(ranks, 200) > 0.01).all()


def test_good_posterior_nltp_matches_the_exact_posterior(good_posterior, problem) -> None:
    theta, x = problem.theta_test, problem.x_test
    values = nltp(good_posterior, theta, x)
    assert values.shape == (len(theta),)
    _, var = problem.sim.posterior_moments(x[0])
    expected = 3 / 2 * math.log(2 * math.pi * math.e * var)  # E[-log p] for a Gaussian
    assert abs(values.mean() - expected) <= 0.3
    # Paired with the exact density of the same pairs, the excess estimates E[KL(p || q)] >= 0.
    excess = values - exact_nltp(problem, theta, x)
    assert -0.05 <= excess.mean() <= 0.15


def test_wrong_posterior_is_caught_by_every_metric(wrong_posterior, problem) -> None:
    for i, x_o in enumerate(problem.x_test[:3]):
        exact = problem.sim.sample_posterior(x_o, 1000, np.random.default_rng(i))
        assert c2st(exact, wrong_posterior.sample(x_o, 1000, seed=i), seed=i) >= 0.8
    theta, x = problem.theta_test[:200], problem.x_test[:200]
    ranks = sbc_ranks(wrong_posterior, theta, x, n_samples=200, seed=0)
    assert (sbc_uniformity_pvalues(ranks, 200) < 0.01).any()
    excess = nltp(wrong_posterior, problem.theta_test, problem.x_test) - exact_nltp(
        problem, problem.theta_test, problem.x_test
    )
    assert excess.mean() > 1.0
