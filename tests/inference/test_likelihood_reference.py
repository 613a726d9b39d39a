"""MCMC on a simulator's own likelihood matches exact posteriors, and bad runs are refused."""

import numpy as np
import pytest

from inference.c2st import c2st
from inference.errors import ReferenceRefused
from inference.likelihood_reference import LikelihoodReference, likelihood_posterior_samples
from simulators import GaussianLinear, Lorenz96, TwoMoons
from simulators.errors import ConfigError


def _observation(sim, seed):
    theta = sim.prior.sample(np.random.default_rng(seed), 1)
    return sim.simulate(theta, np.array([seed], dtype=np.uint64))[0]


@pytest.mark.slow
def test_gaussian_linear_reference_matches_the_exact_posterior():
    sim = GaussianLinear(dim=5)
    x_obs = np.stack([_observation(sim, s) for s in (1, 2)])
    reference = LikelihoodReference(sim, thin=1)
    draws = reference.sample(x_obs, 2000, seed=0)
    assert draws.shape == (2, 2000, 5)
    for i, x_o in enumerate(x_obs):
        exact = sim.sample_posterior(x_o, 2000, np.random.default_rng(i))
        assert c2st(exact, draws[i], seed=i) <= 0.55
        d = reference.diagnostics[i]
        assert d.chains == 8 and np.all(d.rhat <= 1.05) and np.all(d.ess >= 400)


@pytest.mark.slow
def test_two_moons_reference_matches_the_exact_posterior():
    """Bimodal: the declared symmetry carries draws between the moons, which no chain can."""
    sim = TwoMoons()
    x_o = _observation(sim, 3)
    draws, diagnostics = likelihood_posterior_samples(sim, x_o, 2000, seed=0)
    exact = sim.sample_posterior(x_o, 2000, np.random.default_rng(0))
    assert c2st(exact, draws, seed=0) <= 0.55
    assert diagnostics.symmetries == 1 and np.all(diagnostics.rhat <= 1.05)
    # both moons are there in equal shares
    assert 0.45 < (draws.sum(axis=1) > 0).mean() < 0.55


def test_a_too_short_run_is_refused_with_its_figures():
    sim = TwoMoons()
    with pytest.raises(ReferenceRefused, match="ESS >= 400") as info:
        likelihood_posterior_samples(sim, _observation(sim, 3), 200, seed=0, warmup=5, thin=1)
    assert "theta_0" in str(info.value) and "Run longer" in str(info.value)
    assert np.all(info.value.diagnostics.ess < 400)


class _TwoMoonsUndeclared(TwoMoons):
    """Two moons without its symmetry: chains stay in the moon they start in."""

    def posterior_symmetries(self):
        return ()


def test_chains_stuck_in_different_modes_are_refused_by_rhat():
    sim = _TwoMoonsUndeclared()
    with pytest.raises(ReferenceRefused, match="posterior_symmetries") as info:
        likelihood_posterior_samples(sim, _observation(sim, 3), 800, seed=0, min_ess=0, thin=1)
    assert np.all(info.value.diagnostics.rhat > 1.05)


class _TwoMoonsWrongSymmetry(TwoMoons):
    def posterior_symmetries(self):
        return (lambda theta: -theta,)


def test_a_symmetry_that_changes_the_posterior_is_refused():
    sim = _TwoMoonsWrongSymmetry()
    with pytest.raises(ConfigError, match="changes the log posterior"):
        likelihood_posterior_samples(sim, _observation(sim, 3), 100, seed=0)


def test_same_seed_same_draws_and_global_generators_untouched():
    import torch

    sim = GaussianLinear(dim=2)
    x_o = _observation(sim, 4)
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    a, _ = likelihood_posterior_samples(sim, x_o, 400, seed=5, warmup=20, min_ess=0)
    b, _ = likelihood_posterior_samples(sim, x_o, 400, seed=5, warmup=20, min_ess=0)
    assert a.shape == (400, 2) and a.tobytes() == b.tobytes()
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_a_simulator_without_likelihood_is_refused():
    with pytest.raises(ConfigError, match="declares no likelihood"):
        LikelihoodReference(Lorenz96(J=4))
