"""The Gaussian linear model matches sbibm's definition and its exact posterior is right."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from simulators import GaussianLinear
from simulators.errors import ConfigError


def test_likelihood_moments_match_sbibm():
    sim = GaussianLinear(dim=4)
    theta = np.tile([[0.3, -0.2, 0.0, 0.1]], (20000, 1))
    x = sim.simulate(theta, np.arange(20000, dtype=np.uint64))
    np.testing.assert_allclose(x.mean(0), theta[0], atol=0.01)
    np.testing.assert_allclose(x.var(0), 0.1, rtol=0.04)  # 0.1 is a variance, not a std


def test_prior_variance_is_point_one():
    sim = GaussianLinear(dim=3)
    theta = sim.prior.sample(np.random.default_rng(0), 20000)
    np.testing.assert_allclose(theta.var(0), 0.1, rtol=0.04)


def test_exact_posterior_agrees_with_bayes_rule_by_rejection():
    """Draws of theta whose simulated x lands near x_o follow the exact posterior."""
    sim = GaussianLinear(dim=1)
    rng = np.random.default_rng(3)
    theta = sim.prior.sample(rng, 400_000)
    x = sim.simulate(theta, rng.integers(0, 2**63, 400_000).astype(np.uint64))
    x_o = np.array([0.4])
    accepted = theta[np.abs(x[:, 0] - x_o[0]) < 0.01, 0]
    mean, var = sim.posterior_moments(x_o)
    standard_error = accepted.std() / np.sqrt(len(accepted))
    assert abs(accepted.mean() - mean[0]) < 4 * standard_error
    assert abs(accepted.var() - var) < 0.005
    assert (
        abs(accepted.mean() - x_o[0]) > 0.15
    )  # the prior pulls it: a likelihood-only answer fails
    exact = sim.sample_posterior(x_o, 50_000, rng)
    assert abs(exact.mean() - mean[0]) < 0.005 and abs(exact.var() - 0.05) < 0.002


def test_log_likelihood_is_the_gaussian_density_row_by_row():
    sim = GaussianLinear(dim=3, noise_var=0.2)
    rng = np.random.default_rng(4)
    theta = sim.prior.sample(rng, 50)
    x = sim.simulate(theta, np.arange(50, dtype=np.uint64))
    x[::2] += 0.3  # off the simulated point too, so a likelihood that ignores x fails
    expected = [
        multivariate_normal(t, 0.2 * np.eye(3)).logpdf(v) for t, v in zip(theta, x, strict=True)
    ]
    np.testing.assert_allclose(sim.log_likelihood(theta, x), expected, rtol=1e-12)


def test_log_likelihood_refuses_mismatched_rows():
    sim = GaussianLinear(dim=2)
    with pytest.raises(ConfigError, match="one x row per theta row"):
        sim.log_likelihood(np.zeros((3, 2)), np.zeros((2, 2)))
