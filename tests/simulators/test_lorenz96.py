"""The two-scale Lorenz-96 integrates the right equations and reports the right statistics."""

import numpy as np
import pytest

from simulators import ConfigError, make_simulator
from simulators.lorenz96 import OUTPUT_NAMES, Lorenz96


def reference_run(X, Y, F, h, c, b, dt, n_steps):
    """A plain, unoptimised RK4 of the two-scale model on one sample (Y as a flat ring)."""
    K, J = len(X), Y.shape[0]

    def f(X, Y):
        ring = Y.T.ravel()  # Y_{j,k} at position k * J + j
        Ysum = ring.reshape(K, J).sum(1)
        dX = -np.roll(X, 1) * (np.roll(X, 2) - np.roll(X, -1)) - X + F - h * c / b * Ysum
        dring = (
            -c * b * np.roll(ring, -1) * (np.roll(ring, -2) - np.roll(ring, 1))
            - c * ring
            + h * c / b * np.repeat(X, J)
        )
        return dX, dring.reshape(K, J).T

    for _ in range(n_steps):
        k1 = f(X, Y)
        k2 = f(X + dt / 2 * k1[0], Y + dt / 2 * k1[1])
        k3 = f(X + dt / 2 * k2[0], Y + dt / 2 * k2[1])
        k4 = f(X + dt * k3[0], Y + dt * k3[1])
        X = X + dt / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        Y = Y + dt / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return X, Y


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_state_after_spinup_matches_a_plain_rk4(backend):
    """With a one-step window the statistics are those of the state after the spin-up."""
    sim = Lorenz96(K=5, J=3, dt=0.01, spinup=0.3, window=0.01, backend=backend)
    theta = np.array([[9.0, 0.8, 7.0, 6.0], [12.0, 1.3, 11.0, 14.0]])
    seeds = np.array([3, 4], dtype=np.uint64)
    x = sim.simulate(theta, seeds)
    X0, Y0 = sim.initial_state(seeds)
    for i, (F, h, c, b) in enumerate(theta):
        X, Y = reference_run(X0[:, i], Y0[:, :, i], F, h, c, b, 0.01, 30)
        U = h * c / b * Y.sum(0)
        expected = [X.mean(), (X**2).mean(), U.mean(), (U**2).mean(), (X * U).mean()]
        expected += [Y.mean(), (Y**2).mean()]
        np.testing.assert_allclose(x[i], expected, rtol=1e-9)


def test_uncoupled_slow_variables_have_lorenz_emanuel_statistics():
    """h = 0 leaves the one-scale model: K=40, F=8 has mean 2.34 and std 3.64 (Lorenz &
    Emanuel 1998), and the unforced fast variables decay to zero."""
    sim = Lorenz96(K=40, J=2, h=0.0, inferred=["F"], spinup=5.0, window=50.0)
    x = sim.simulate(np.full((4, 1), 8.0), np.arange(4, dtype=np.uint64)).mean(0)
    mean_x, std_x = x[0], np.sqrt(x[1] - x[0] ** 2)
    assert abs(mean_x - 2.34) < 0.06
    assert abs(std_x - 3.64) < 0.06
    assert x[2] == 0.0 and abs(x[6]) < 1e-30


def test_backends_agree_and_torch_is_batch_invariant():
    theta = np.array([[10.0, 1.0, 10.0, 10.0], [7.0, 0.6, 12.0, 8.0], [14.0, 1.4, 6.0, 13.0]])
    seeds = np.array([1, 2, 3], dtype=np.uint64)
    settings = {"J": 8, "spinup": 0.1, "window": 0.4}
    x_np = Lorenz96(**settings).simulate(theta, seeds)
    torch_sim = Lorenz96(backend="torch", **settings)
    x_torch = torch_sim.simulate(theta, seeds)
    np.testing.assert_allclose(x_torch, x_np, rtol=1e-9)
    alone = np.concatenate(
        [torch_sim.simulate(theta[i : i + 1], seeds[i : i + 1]) for i in range(3)]
    )
    assert alone.tobytes() == x_torch.tobytes()


def test_sub_batches_give_the_same_bytes():
    theta = np.tile([[10.0, 1.0, 10.0, 10.0]], (5, 1))
    seeds = np.arange(5, dtype=np.uint64)
    one = Lorenz96(J=4, spinup=0.05, window=0.1, batch_size=2).simulate(theta, seeds)
    whole = Lorenz96(J=4, spinup=0.05, window=0.1).simulate(theta, seeds)
    assert one.tobytes() == whole.tobytes()


def test_a_blow_up_is_a_non_finite_row_and_spares_the_others():
    sim = Lorenz96(J=4, spinup=0.1, window=0.1)
    theta = np.array([[10.0, 1.0, 10.0, 10.0], [1e6, 1.0, 10.0, 10.0]])
    seeds = np.array([5, 6], dtype=np.uint64)
    x = sim.simulate(theta, seeds)
    assert np.isfinite(x[0]).all() and not np.isfinite(x[1]).all()
    assert x[0].tobytes() == sim.simulate(theta[:1], seeds[:1])[0].tobytes()


def test_fixed_parameters_stand_in_for_inferred_ones():
    settings = {"J": 4, "spinup": 0.1, "window": 0.2}
    only_f = Lorenz96(inferred=["F"], h=0.7, c=9.0, b=11.0, **settings)
    all_four = Lorenz96(**settings)
    seeds = np.array([9], dtype=np.uint64)
    assert only_f.prior.names == ("F",)
    x_f = only_f.simulate(np.array([[12.0]]), seeds)
    x_all = all_four.simulate(np.array([[12.0, 0.7, 9.0, 11.0]]), seeds)
    assert x_f.tobytes() == x_all.tobytes()
    assert only_f.output_names == OUTPUT_NAMES


def test_prior_settings_override_the_defaults():
    sim = make_simulator("lorenz96", inferred=["F", "c"], prior={"F": {"low": 8.0, "high": 9.0}})
    assert sim.prior.names == ("F", "c")
    assert sim.prior.parameters[0].low == 8.0 and sim.prior.parameters[1].high == 15.0
    normal = Lorenz96(prior={"h": {"distribution": "normal", "loc": 1.0, "scale": 0.2}})
    assert normal.prior.parameters[1].distribution == "normal"


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"dt": -0.01}, "'dt' must be"),
        ({"K": 3}, "'K' must be an integer >= 4"),
        ({"window": 0.001}, "shorter than one step"),
        ({"inferred": ["F", "G"]}, "'inferred' must be"),
        ({"prior": {"F": {"low": 5.0, "high": 5.0}}}, r"prior\['F'\]"),
        ({"inferred": ["F"], "prior": {"h": {"low": 0.1}}}, "not inferred"),
        ({"backend": "jax"}, "'backend'"),
        ({"batch_size": 0}, "'batch_size'"),
    ],
)
def test_bad_settings_name_the_field(settings, match):
    with pytest.raises(ConfigError, match=match):
        make_simulator("lorenz96", **settings)


def test_theta_of_the_wrong_width_is_refused():
    with pytest.raises(ConfigError, match=r"shape \(batch, 4\)"):
        Lorenz96().simulate(np.zeros((2, 3)), np.arange(2, dtype=np.uint64))


def test_coupling_samples_are_the_states_the_statistics_average():
    sim = Lorenz96(J=4, spinup=0.1, window=0.1)
    theta, seeds = np.array([[10.0, 1.0, 10.0, 10.0]]), np.array([1], np.uint64)
    X, U, Y2 = sim.coupling_samples(theta, seeds, every=1)
    x = sim.simulate(theta, seeds)[0]
    assert X.shape == U.shape == Y2.shape == (20 * 8,)  # 20 window steps, K=8
    averages = [X.mean(), U.mean(), (X * U).mean(), Y2.mean()]
    np.testing.assert_allclose(averages, x[[0, 2, 4, 6]], rtol=1e-12)
    assert sim.coupling_samples(theta, seeds, every=5)[0].shape == (4 * 8,)
