"""SLCP matches sbibm's definition and its log-likelihood is the Gaussian density."""

import math

import numpy as np
from scipy.stats import multivariate_normal

from simulators import SLCP


def _cov(t):
    s1, s2, rho = t[2] ** 2, t[3] ** 2, math.tanh(t[4])
    return np.array([[s1**2 + 1e-6, rho * s1 * s2], [rho * s1 * s2, s2**2 + 1e-6]])


def test_four_draws_with_the_right_mean_and_covariance():
    sim = SLCP()
    theta = np.array([0.7, -1.2, 1.1, -0.8, 0.6])
    x = sim.simulate(np.tile(theta, (20000, 1)), np.arange(20000, dtype=np.uint64))
    draws = x.reshape(20000, 4, 2)
    for k in range(4):  # each of the 4 draws is one Gaussian sample, in (x, y) order
        np.testing.assert_allclose(draws[:, k].mean(0), theta[:2], atol=0.02)
        np.testing.assert_allclose(np.cov(draws[:, k].T), _cov(theta), rtol=0.05, atol=0.01)
    # and the 4 draws of one row are independent
    assert abs(np.corrcoef(draws[:, 0, 0], draws[:, 1, 0])[0, 1]) < 0.03


def test_log_likelihood_is_the_product_of_four_gaussians():
    sim = SLCP()
    rng = np.random.default_rng(0)
    theta = sim.prior.sample(rng, 40)
    x = sim.simulate(sim.prior.sample(rng, 40), np.arange(40, dtype=np.uint64))  # other thetas
    expected = [
        sum(multivariate_normal(t[:2], _cov(t)).logpdf(v.reshape(4, 2)))
        for t, v in zip(theta, x, strict=True)
    ]
    np.testing.assert_allclose(sim.log_likelihood(theta, x), expected, rtol=1e-9)


def test_posterior_is_symmetric_in_the_signs_of_theta_3_and_theta_4():
    sim = SLCP()
    rng = np.random.default_rng(1)
    theta = sim.prior.sample(rng, 10)
    x = sim.simulate(theta, np.arange(10, dtype=np.uint64))
    declared = sim.posterior_symmetries()
    assert len(declared) == 3  # the group of sign flips of theta_3 and theta_4, less identity
    images = {tuple(np.sign(g(np.ones((1, 5)))[0]).astype(int)) for g in declared}
    assert images == {(1, 1, -1, 1, 1), (1, 1, 1, -1, 1), (1, 1, -1, -1, 1)}
    for g in declared:
        np.testing.assert_allclose(sim.log_likelihood(g(theta), x), sim.log_likelihood(theta, x))
