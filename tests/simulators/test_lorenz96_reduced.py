"""The one-scale Lorenz-96 with a closure stands in for the two-scale model."""

import numpy as np
import pytest

from simulators import ConfigError, make_simulator
from simulators.lorenz96 import Lorenz96
from simulators.lorenz96_reduced import Lorenz96Reduced, closure_features, fit_closure


def test_it_shares_the_two_scale_models_parameters_and_outputs():
    settings = {"inferred": ["F", "b"], "prior": {"F": {"low": 6.0, "high": 9.0}}}
    reduced, truth = Lorenz96Reduced(**settings), Lorenz96(**settings)
    assert reduced.prior == truth.prior
    assert reduced.output_names == truth.output_names


def test_a_linear_closure_matches_a_plain_rk4():
    a0, a1, q0, q2, dt, steps = 0.9, 1.1, 0.03, 0.002, 0.01, 40
    sim = Lorenz96Reduced(
        K=6, dt=dt, spinup=steps * dt, window=dt, closure=[[a0], [a1]], y2_closure=[[q0], [0], [q2]]
    )
    seeds = np.array([2, 3], dtype=np.uint64)
    x = sim.simulate(np.array([[9.0, 1, 10, 10], [13.0, 1, 10, 10]]), seeds)
    X0 = Lorenz96(K=6).initial_state(seeds)[0]
    for i, F in enumerate([9.0, 13.0]):
        X = X0[:, i]

        def f(X, F=F):
            return -np.roll(X, 1) * (np.roll(X, 2) - np.roll(X, -1)) - X + F - (a0 + a1 * X)

        for _ in range(steps):
            k1 = f(X)
            k2 = f(X + dt / 2 * k1)
            k3 = f(X + dt / 2 * k2)
            X = X + dt / 6 * (k1 + 2 * k2 + 2 * k3 + f(X + dt * k3))
        U = a0 + a1 * X
        expected = [X.mean(), (X**2).mean(), U.mean(), (U**2).mean(), (X * U).mean()]
        y = 10 * U / (1 * 10 * 32)  # Ybar = b U / (h c J)
        expected += [y.mean(), (q0 + q2 * X**2).mean()]
        np.testing.assert_allclose(x[i], expected, rtol=1e-9)


def test_a_zero_closure_is_the_uncoupled_two_scale_model():
    settings = {"inferred": ["F"], "h": 0.0, "spinup": 0.5, "window": 1.0}
    seeds = np.arange(3, dtype=np.uint64)
    theta = np.array([[8.0], [10.0], [12.0]])
    reduced = Lorenz96Reduced(closure=[[0.0]], y2_closure=[[0.0]], **settings)
    reduced = reduced.simulate(theta, seeds)
    truth = Lorenz96(J=4, **settings).simulate(theta, seeds)
    np.testing.assert_allclose(reduced[:, :5], truth[:, :5], rtol=1e-12)


def test_the_default_closures_reproduce_the_two_scale_statistics():
    """Over prior draws every statistic is within 15 % (median) of the two-scale model's;
    leaving the fast scale out altogether (zero closures) misses all but mean_X by > 30 %."""
    settings = {"spinup": 2.0, "window": 5.0}
    truth = Lorenz96(**settings)
    rng = np.random.default_rng(7)
    theta, seeds = truth.prior.sample(rng, 8), np.arange(8, dtype=np.uint64)
    x_true = truth.simulate(theta, seeds)
    default = Lorenz96Reduced(**settings).simulate(theta, seeds)
    error = np.median(np.abs(default - x_true) / np.abs(x_true), axis=0)
    assert (error < 0.15).all(), error
    zero = Lorenz96Reduced(closure=[[0.0]], y2_closure=[[0.0]], **settings)
    error = np.median(np.abs(zero.simulate(theta, seeds) - x_true) / np.abs(x_true), axis=0)
    assert (error[1:] > 0.3).all(), error  # mean_X alone moves little


@pytest.mark.parametrize(("target", "column"), [("U", 1), ("Y2", 2)])
def test_fit_closure_is_least_squares_over_every_sample(target, column):
    settings = {"J": 4, "spinup": 0.2, "window": 0.4, "inferred": ["F", "h"]}
    closure = fit_closure(degree=2, order=1, n_theta=3, seed=5, every=4, target=target, **settings)
    closure = np.array(closure)
    assert closure.shape == (3, 5)
    # rebuild the same draws one sample at a time, with each sample's own features
    sim = Lorenz96(**settings)
    rng = np.random.default_rng(5)
    theta = sim.prior.sample(rng, 3)
    seeds = rng.integers(0, 2**63, 3).astype(np.uint64)
    rows, target = [], []
    for i in range(3):
        samples = sim.coupling_samples(theta[i : i + 1], seeds[i : i + 1], every=4)
        X, U = samples[0], samples[column]
        phi = closure_features(sim.full_parameters(theta[i : i + 1]), 1)[0]
        rows.append(np.concatenate([phi[None] * X[:, None] ** m for m in range(3)], axis=1))
        target.append(U)
    expected = np.linalg.lstsq(np.concatenate(rows), np.concatenate(target), rcond=None)[0]
    np.testing.assert_allclose(closure.ravel(), expected, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("field", ["closure", "y2_closure"])
@pytest.mark.parametrize("closure", [[[1.0, 2.0]], [1.0, 2.0], [[np.nan]], [[1.0], [1.0, 2.0]]])
def test_a_bad_closure_is_a_config_error(field, closure):
    with pytest.raises(ConfigError, match=f"'{field}' must be finite rows"):
        make_simulator("lorenz96_reduced", **{field: closure})
