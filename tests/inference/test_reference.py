"""The reference ensemble (for simulators without an exact posterior) and estimator choices."""

from __future__ import annotations

import numpy as np
import pytest

from inference import (
    ExactReference,
    NPESettings,
    c2st,
    load_posterior,
    train_npe,
    train_reference_ensemble,
)
from simulators import ConfigError

TINY = NPESettings(hidden_features=16, num_transforms=1, max_num_epochs=40, stop_after_epochs=5)


@pytest.fixture(scope="module")
def ensemble(problem, small_maf):
    return train_reference_ensemble(
        problem.theta, problem.x, problem.sim.prior, small_maf, members=2, seed=0
    )


def test_reference_ensemble_agrees_with_itself_and_the_exact_posterior(ensemble, problem) -> None:
    x_obs = problem.x_test[:2]
    draws = ensemble.sample(x_obs, 601, seed=1)
    assert draws.shape == (2, 601, 3)
    np.testing.assert_array_equal(draws, ensemble.sample(x_obs, 601, seed=1))
    exact = ExactReference(problem.sim).sample(x_obs, 600, seed=2)
    assert max(c2st(exact[i], draws[i, :600], seed=0) for i in range(2)) <= 0.65
    agreement = ensemble.self_agreement(x_obs, 600, seed=3)
    assert agreement.shape == (2, 1) and (agreement <= 0.65).all()


def test_reference_ensemble_needs_two_members(problem) -> None:
    with pytest.raises(ConfigError, match="at least 2"):
        train_reference_ensemble(
            problem.theta, problem.x, problem.sim.prior, TINY, members=1, seed=0
        )


@pytest.mark.parametrize(
    "settings",
    [
        NPESettings(
            density_estimator="zuko_nsf", hidden_features=16, num_transforms=1, max_num_epochs=3
        ),
        NPESettings(hidden_features=16, num_transforms=1, max_num_epochs=3, embedding_features=2),
    ],
    ids=["zuko_nsf", "embedding"],
)
def test_other_estimators_train_save_and_load(settings, problem, tmp_path) -> None:
    theta, x = problem.theta[:300], problem.x[:300]
    with pytest.warns(UserWarning, match="max_num_epochs"):
        posterior = train_npe(theta, x, problem.sim.prior, settings, seed=0)
    posterior.save(tmp_path / "p.pt")
    loaded = load_posterior(tmp_path / "p.pt", problem.sim.prior)
    np.testing.assert_allclose(
        loaded.log_prob(theta[:5], x[:5]), posterior.log_prob(theta[:5], x[:5]), rtol=1e-5
    )
    assert loaded.network_settings == settings
