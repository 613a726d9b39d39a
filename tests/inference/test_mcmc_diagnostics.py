"""Split R-hat and ESS give the textbook answers on chains whose answer is known."""

import numpy as np
import pytest

from inference.mcmc_diagnostics import effective_sample_size, split_rhat
from simulators.errors import ConfigError


def _ar1(phi, chains, n, p, seed):
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((chains, n, p)) * np.sqrt(1 - phi**2)
    y = np.empty_like(noise)
    y[:, 0] = rng.standard_normal((chains, p))
    for t in range(1, n):
        y[:, t] = phi * y[:, t - 1] + noise[:, t]
    return y


def test_independent_draws_have_rhat_one_and_full_ess():
    draws = np.random.default_rng(0).standard_normal((8, 1000, 3))
    assert np.all(np.abs(split_rhat(draws) - 1) < 0.01)
    np.testing.assert_allclose(effective_sample_size(draws), 8000, rtol=0.1)


def test_ar1_chains_have_the_theoretical_ess():
    """ESS of an AR(1) chain is n (1 - phi) / (1 + phi): 0.0526 n for phi = 0.9."""
    draws = _ar1(0.9, 8, 4000, 2, seed=1)
    np.testing.assert_allclose(effective_sample_size(draws), 8 * 4000 * 0.1 / 1.9, rtol=0.15)


def test_a_shifted_chain_and_a_drifting_chain_raise_rhat():
    draws = np.random.default_rng(2).standard_normal((8, 1000, 1))
    shifted = draws.copy()
    shifted[0] += 1.5
    assert split_rhat(shifted)[0] > 1.05
    drifting = draws + np.linspace(0, 3, 1000)[None, :, None]  # every chain drifts alike
    assert split_rhat(drifting)[0] > 1.05  # only splitting the chains can see this


def test_too_short_chains_are_refused():
    with pytest.raises(ConfigError, match="run the chains longer"):
        split_rhat(np.zeros((4, 3, 2)))
