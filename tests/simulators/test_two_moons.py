"""Two moons matches sbibm's definition; its likelihood is a normalised density that the
simulator follows, and its exact posterior sampler agrees with Bayes' rule."""

import math

import numpy as np
import pytest

from inference.c2st import c2st
from simulators import TwoMoons
from simulators.two_moons import PosteriorSamplingError


def test_noise_is_a_half_ring_of_radius_point_one_at_theta_zero():
    """At theta = 0 the shift is zero, so x is the noise point p itself."""
    x = TwoMoons().simulate(np.zeros((20000, 2)), np.arange(20000, dtype=np.uint64))
    r, a = np.hypot(x[:, 0] - 0.25, x[:, 1]), np.arctan2(x[:, 1], x[:, 0] - 0.25)
    assert abs(r.mean() - 0.1) < 3e-4 and abs(r.std() - 0.01) < 3e-4
    assert a.min() > -math.pi / 2 and a.max() < math.pi / 2
    assert abs(a.mean()) < 0.03 and abs(a.var() - math.pi**2 / 12) < 0.03


def test_shift_follows_sbibm_map():
    """x - p = (-|theta_1 + theta_2| / sqrt 2, (-theta_1 + theta_2) / sqrt 2)."""
    sim, seeds = TwoMoons(), np.arange(3, dtype=np.uint64)
    theta = np.array([[0.5, 0.3], [-0.5, -0.3], [0.2, -0.9]])
    shift = sim.simulate(theta, seeds) - sim.simulate(np.zeros((3, 2)), seeds)
    expected = np.stack([-np.abs(theta.sum(1)), theta[:, 1] - theta[:, 0]], 1) / math.sqrt(2)
    np.testing.assert_allclose(shift, expected, atol=1e-12)


@pytest.mark.parametrize("theta", [(0.0, 0.0), (0.6, -0.2), (-0.9, 0.95)])
def test_likelihood_integrates_to_one_and_matches_the_simulator(theta):
    sim = TwoMoons()
    theta = np.array(theta)
    x = sim.simulate(np.tile(theta, (40000, 1)), np.arange(40000, dtype=np.uint64))
    step = 5e-4
    g0 = np.arange(x[:, 0].min() - 0.03, x[:, 0].max() + 0.03, step)
    g1 = np.arange(x[:, 1].min() - 0.03, x[:, 1].max() + 0.03, step)
    grid = np.stack(np.meshgrid(g0, g1, indexing="ij"), -1).reshape(-1, 2)
    density = np.exp(sim.log_likelihood(np.tile(theta, (len(grid), 1)), grid))
    assert abs(density.sum() * step**2 - 1) < 2e-3
    # probability of 4 coarse cells under the density vs the simulated frequency
    cells = np.floor((grid - grid.min(0)) / 0.05).astype(int)
    x_cells = np.floor((x - grid.min(0)) / 0.05).astype(int)
    for cell in {tuple(c) for c in x_cells[:4]}:
        expected = density[(cells == cell).all(1)].sum() * step**2
        observed = (x_cells == cell).all(1).mean()
        assert abs(observed - expected) < 4 * math.sqrt(expected / 40000) + 2e-3


def test_likelihood_is_zero_where_no_noise_point_can_land():
    sim = TwoMoons()
    # behind the ring's centre (r = -0.15: 25 sd from 0.1) and on its axis (r = 0: impossible)
    behind, axis = sim.log_likelihood(np.zeros((2, 2)), np.array([[0.1, 0.0], [0.25, 0.5]]))
    assert behind < -300 and np.isneginf(axis)


def _sir(sim, x_o, n, rng, proposals=2_000_000):
    """Importance resampling from the prior with weights exp(log_likelihood)."""
    theta = sim.prior.sample(rng, proposals)
    log_w = sim.log_likelihood(theta, np.broadcast_to(x_o, (proposals, 2)))
    w = np.exp(log_w - log_w.max())
    ess = w.sum() ** 2 / (w**2).sum()
    return theta[rng.choice(proposals, n, p=w / w.sum())], ess


@pytest.mark.parametrize("true_theta", [(0.3, 0.4), (-0.7, 0.1), (0.05, -0.1)])
def test_exact_posterior_matches_importance_resampling(true_theta):
    """Two independent routes to p(theta | x_o): the noise-inversion sampler and importance
    resampling of 2 million prior draws weighted by the likelihood; a sampler that missed a
    mode, the box or the 1/r factor fails."""
    sim = TwoMoons()
    x_o = sim.simulate(np.array([true_theta]), np.array([7], dtype=np.uint64))[0]
    rng = np.random.default_rng(1)
    exact = sim.sample_posterior(x_o, 2000, rng)
    reference, ess = _sir(sim, x_o, 2000, rng)
    assert ess > 5000  # few repeated draws among the 2,000 resampled
    assert np.isfinite(sim.log_likelihood(exact, np.broadcast_to(x_o, (2000, 2)))).all()
    assert c2st(exact, reference, seed=0) <= 0.56
    # both moons, by the symmetry (t1, t2) -> (-t2, -t1): a one-moon sampler fails
    side = np.sign(exact.sum(1))
    assert 0.45 < (side > 0).mean() < 0.55


def test_exact_posterior_is_seeded():
    sim = TwoMoons()
    x_o = np.array([0.1, 0.2])
    a = sim.sample_posterior(x_o, 300, np.random.default_rng(5))
    b = sim.sample_posterior(x_o, 300, np.random.default_rng(5))
    assert a.shape == (300, 2) and a.tobytes() == b.tobytes()


def test_impossible_observation_is_refused():
    with pytest.raises(PosteriorSamplingError, match="nearly\\) impossible"):
        TwoMoons().sample_posterior(np.array([5.0, 5.0]), 10, np.random.default_rng(0))


def test_declared_symmetry_maps_one_moon_onto_the_other():
    sim = TwoMoons()
    (g,) = sim.posterior_symmetries()
    theta = sim.prior.sample(np.random.default_rng(2), 50)
    x = sim.simulate(theta, np.arange(50, dtype=np.uint64))
    np.testing.assert_allclose(g(theta), -theta[:, ::-1])
    np.testing.assert_allclose(sim.log_likelihood(g(theta), x), sim.log_likelihood(theta, x))
