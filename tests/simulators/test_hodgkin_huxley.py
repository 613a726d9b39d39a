"""The Hodgkin-Huxley simulator is sbi's tutorial model, with sbi's summary statistics."""

import math

import numpy as np
import pytest
from scipy import stats

from simulators import ConfigError, make_simulator
from simulators.hodgkin_huxley import HodgkinHuxley, summary_statistics

SHORT = {"duration": 30.0, "t_on": 5.0, "dt": 0.025}


def sbi_tutorial_trace(gbar_Na, gbar_K, noise, t, current, dt, V0=-70.0):
    """sbi's HHsimulator, transcribed scalar by scalar, with the noise given."""
    g_leak, gbar_M, tau_max, Vt, nois_fact, E_leak, C, E_Na, E_K = (
        0.1, 0.07, 6e2, -60.0, 0.1, -70.0, 1.0, 53.0, -107.0,
    )  # fmt: skip

    def efun(z):
        return 1 - z / 2 if abs(z) < 1e-4 else z / (math.exp(z) - 1)

    def rates(x):
        am = 0.32 * efun(-0.25 * (x - Vt - 13.0)) / 0.25
        bm = 0.28 * efun(0.2 * (x - Vt - 40)) / 0.2
        ah = 0.128 * math.exp(-(x - Vt - 17.0) / 18.0)
        bh = 4.0 / (1 + math.exp(-0.2 * (x - Vt - 40.0)))
        an = 0.032 * efun(-0.2 * (x - Vt - 15.0)) / 0.2
        bn = 0.5 * math.exp(-(x - Vt - 10.0) / 40)
        p_inf = 1.0 / (1.0 + math.exp(-0.1 * (x + 35.0)))
        tau_p = tau_max / (3.3 * math.exp(0.05 * (x + 35.0)) + math.exp(-0.05 * (x + 35.0)))
        return (am / (am + bm), 1 / (am + bm), ah / (ah + bh), 1 / (ah + bh),
                an / (an + bn), 1 / (an + bn), p_inf, tau_p)  # fmt: skip

    V = np.zeros_like(t)
    V[0] = V0
    m_inf, _, h_inf, _, n_inf, _, p_inf, _ = rates(V0)
    m, h, n, p = m_inf, h_inf, n_inf, p_inf
    for i in range(1, len(t)):
        tau_V_inv = (m**3 * gbar_Na * h + n**4 * gbar_K + g_leak + gbar_M * p) / C
        V_inf = (m**3 * gbar_Na * h * E_Na + n**4 * gbar_K * E_K + g_leak * E_leak
                 + gbar_M * p * E_K + current[i - 1]
                 + nois_fact * noise[i - 1] / dt**0.5) / (tau_V_inv * C)  # fmt: skip
        V[i] = V_inf + (V[i - 1] - V_inf) * math.exp(-dt * tau_V_inv)
        m_inf, tau_m, h_inf, tau_h, n_inf, tau_n, p_inf, tau_p = rates(V[i])
        n = n_inf + (n - n_inf) * math.exp(-dt / tau_n)
        m = m_inf + (m - m_inf) * math.exp(-dt / tau_m)
        h = h_inf + (h - h_inf) * math.exp(-dt / tau_h)
        p = p_inf + (p - p_inf) * math.exp(-dt / tau_p)
    return V


def test_traces_match_sbis_simulator():
    sim = HodgkinHuxley(**SHORT)
    theta = np.array([[50.0, 5.0], [20.0, 1.0]])
    seeds = np.array([4, 5], dtype=np.uint64)
    V = sim.voltage(theta, seeds)
    assert V.shape == (len(sim.time), 2) and V[:, 0].max() > 0  # it spikes
    for i, seed in enumerate(seeds):
        noise = np.random.default_rng(int(seed)).standard_normal(len(sim.time) - 1)
        expected = sbi_tutorial_trace(*theta[i], noise, sim.time, sim.current(), SHORT["dt"])
        np.testing.assert_allclose(V[:, i], expected, rtol=1e-9, atol=1e-9)


def test_summary_statistics_of_a_known_trace():
    t = np.arange(0.0, 100.0, 0.1)
    rng = np.random.default_rng(0)
    v = -70.0 + 0.5 * rng.standard_normal(len(t))
    for peak in (30.0, 50.0, 70.0):  # three triangular spikes to +30 mV
        v = np.maximum(v, 30.0 - 100.0 * np.abs(t - peak))
    x = summary_statistics(v, t, t_on=10.0, t_off=90.0)
    stim = v[(t > 10.0) & (t < 90.0)]
    expected = [3, v[t < 10.0].mean(), v[90:100].std(), stim.mean(), stim.var(),
                stats.skew(stim), stats.kurtosis(stim, fisher=False)]  # fmt: skip
    np.testing.assert_allclose(x, expected, rtol=1e-10)


def test_sodium_makes_spikes_and_noise_sets_the_resting_spread():
    sim = HodgkinHuxley(inferred=["gbar_Na", "gbar_K", "nois_fact"], duration=60.0)
    theta = np.array([[50.0, 5.0, 0.1], [0.5, 5.0, 0.1], [50.0, 5.0, 0.0], [50.0, 5.0, 0.3]])
    x = sim.simulate(theta, np.array([1, 1, 1, 1], dtype=np.uint64))
    assert x[0, 0] >= 2 and x[1, 0] == 0  # no sodium, no spikes
    # past the noiseless drift, the resting spread is linear in the noise amplitude (3x)
    drift = x[2, 2]
    ratio = math.sqrt(x[3, 2] ** 2 - drift**2) / math.sqrt(x[0, 2] ** 2 - drift**2)
    assert 2.5 < ratio < 3.5, ratio


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"dt": 0.2}, "'dt' must be"),
        ({"t_on": 80.0}, "t_on < duration / 2"),
        ({"values": {"gbar_Ca": 1.0}}, "unknown names"),
        ({"values": {"gbar_K": 1.0}}, "both inferred and given fixed"),
        ({"inferred": ["gbar_Na", "g_Ca"]}, "'inferred' must be"),
        ({"prior": {"gbar_Na": {"low": 10.0, "high": 1.0}}}, r"prior\['gbar_Na'\]"),
    ],
)
def test_bad_settings_name_the_field(settings, match):
    with pytest.raises(ConfigError, match=match):
        make_simulator("hodgkin_huxley", **settings)


def test_fixed_values_are_used_and_kept_in_the_settings():
    sim = HodgkinHuxley(inferred=["gbar_Na"], values={"gbar_K": 7.0}, **SHORT)
    assert sim.settings["values"] == {"gbar_K": 7.0}
    both = HodgkinHuxley(**SHORT)
    seeds = np.array([3], dtype=np.uint64)
    x_one = sim.simulate(np.array([[40.0]]), seeds)
    assert x_one.tobytes() == both.simulate(np.array([[40.0, 7.0]]), seeds).tobytes()
