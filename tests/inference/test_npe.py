"""Training NPE and using the trained posterior: settings, seeding, shapes, accuracy."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from inference import NPEPosterior, NPESettings, c2st, train_npe
from simulators import ConfigError, Parameter, Prior


def small_problem(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, Prior]:
    """A quick 2-D problem with a bounded prior: x = theta + N(0, 0.1^2)."""
    prior = Prior(
        parameters=(
            Parameter(name="a", distribution="uniform", low=0.0, high=1.0),
            Parameter(name="b", distribution="uniform", low=0.0, high=1.0),
        )
    )
    rng = np.random.default_rng(seed)
    theta = prior.sample(rng, n)
    return theta, theta + 0.1 * rng.standard_normal(theta.shape), prior


QUICK = NPESettings(hidden_features=16, num_transforms=1, max_num_epochs=3, training_batch_size=64)


def test_settings_validate_and_freeze() -> None:
    with pytest.raises(ValidationError):
        NPESettings(hidden_features=0)
    with pytest.raises(ValidationError):
        NPESettings(density_estimator="made")
    with pytest.raises(ValidationError):
        NPESettings(validation_fraction=1.0)
    with pytest.raises(ValidationError):
        NPESettings(learning_rate=1e-3, epochs=3)
    with pytest.raises(ValidationError):
        QUICK.hidden_features = 3


def test_training_writes_and_prints_nothing_and_keeps_global_rng(
    tmp_path, monkeypatch, capsys
) -> None:
    theta, x, prior = small_problem()
    monkeypatch.chdir(tmp_path)
    before = torch.random.get_rng_state()
    with pytest.warns(UserWarning, match="max_num_epochs"):
        posterior = train_npe(theta, x, prior, QUICK, seed=3)
    assert torch.equal(before, torch.random.get_rng_state())
    assert os.listdir(tmp_path) == []  # no ./sbi-logs
    assert capsys.readouterr().out == ""
    info = posterior.training
    assert (info.n_train, info.n_validation) == (360, 40)
    assert info.epochs == len(info.validation_loss) == len(info.training_loss) == 4
    assert not info.converged
    assert info.best_validation_loss == pytest.approx(min(info.validation_loss))


def test_training_is_reproducible_from_its_seed() -> None:
    theta, x, prior = small_problem()
    with pytest.warns(UserWarning):
        first = train_npe(theta, x, prior, QUICK, seed=7)
        second = train_npe(theta, x, prior, QUICK, seed=7)
        other = train_npe(theta, x, prior, QUICK, seed=8)
    states = [p.posterior.posterior_estimator.state_dict() for p in (first, second, other)]
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    assert not all(torch.equal(states[0][k], states[2][k]) for k in states[0])


def test_training_rejects_bad_input(problem) -> None:
    prior, settings = problem.sim.prior, NPESettings()
    with pytest.raises(ConfigError, match="theta must have shape"):
        train_npe(problem.theta[:, :2], problem.x, prior, settings, seed=0)
    with pytest.raises(ConfigError, match="rows"):
        train_npe(problem.theta, problem.x[:-1], prior, settings, seed=0)
    x_nan = problem.x.copy()
    x_nan[5, 1] = np.nan
    with pytest.raises(ConfigError, match="NaN"):
        train_npe(problem.theta, x_nan, prior, settings, seed=0)
    with pytest.raises(ConfigError, match="validation"):
        train_npe(problem.theta[:1], problem.x[:1], prior, settings, seed=0)
    with pytest.raises(ConfigError, match="seed"):
        train_npe(problem.theta, problem.x, prior, settings, seed=-1)


def test_sampling_is_seeded_and_leaves_global_rng(good_posterior: NPEPosterior, problem) -> None:
    x_o = problem.x_test[0]
    before = torch.random.get_rng_state()
    a = good_posterior.sample(x_o, 50, seed=1)
    b = good_posterior.sample(x_o, 50, seed=1)
    c = good_posterior.sample(x_o, 50, seed=2)
    assert torch.equal(before, torch.random.get_rng_state())
    assert a.shape == (50, 3) and a.dtype == np.float64
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    batched = good_posterior.sample_batched(problem.x_test[:4], 30, seed=1)
    assert batched.shape == (30, 4, 3)
    np.testing.assert_array_equal(batched, good_posterior.sample_batched(problem.x_test[:4], 30, 1))
    with pytest.raises(ConfigError, match="x_o must have shape"):
        good_posterior.sample(problem.x_test[:2], 10, seed=0)
    with pytest.raises(ConfigError, match="positive integer"):
        good_posterior.sample_batched(problem.x_test[:2], 0, seed=0)


def test_log_prob_is_pairwise(good_posterior: NPEPosterior, problem) -> None:
    theta, x = problem.theta_test[:6], problem.x_test[:6]
    pairwise = good_posterior.log_prob(theta, x)
    one_by_one = [
        float(
            good_posterior.posterior.log_prob(
                torch.as_tensor(theta[i : i + 1], dtype=torch.float32),
                x=torch.as_tensor(x[i], dtype=torch.float32),
                norm_posterior=False,
            )
        )
        for i in range(6)
    ]
    assert pairwise.shape == (6,)
    np.testing.assert_allclose(pairwise, one_by_one, rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="pairwise"):
        good_posterior.log_prob(theta, x[:5])


def test_posterior_matches_the_exact_one(good_posterior: NPEPosterior, problem) -> None:
    for i, x_o in enumerate(problem.x_test[:3]):
        exact = problem.sim.sample_posterior(x_o, 1000, np.random.default_rng(i))
        learned = good_posterior.sample(x_o, 1000, seed=i)
        assert c2st(exact, learned, seed=i) <= 0.6, f"observation {i}"


def test_bounded_prior_density_is_truncated_and_renormalised() -> None:
    """On a uniform prior a barely trained flow leaks mass; log_prob must still integrate to 1."""
    theta, x, prior = small_problem(n=600)
    settings = NPESettings(hidden_features=16, num_transforms=1, max_num_epochs=2)
    with pytest.warns(UserWarning):
        posterior = train_npe(theta, x, prior, settings, seed=0)
    x_o = np.array([0.05, 0.9])
    draws = posterior.sample(x_o, 2000, seed=0)
    assert ((draws >= 0) & (draws <= 1)).all()
    mass = posterior.support_mass(x_o[None], 4000)
    assert mass.shape == (1,) and 0.25 < mass[0] < 0.9  # leaky, so renormalising matters
    k = 200
    centres = (np.arange(k) + 0.5) / k
    grid = np.stack(np.meshgrid(centres, centres, indexing="ij"), axis=-1).reshape(-1, 2)
    x_rows = np.repeat(x_o[None], len(grid), axis=0)
    density = np.exp(posterior.log_prob(grid, x_rows, leakage_samples=20_000))
    assert density.sum() / k**2 == pytest.approx(1.0, abs=0.04)
    outside = posterior.log_prob(np.array([[1.5, 0.5]]), x_o[None])
    assert outside[0] == -math.inf
