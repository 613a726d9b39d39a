"""A single-compartment Hodgkin-Huxley neuron: the model of sbi's Hodgkin-Huxley tutorial.

The cortical neuron of Pospischil et al. (2008) with Na, K, slow M-type K and leak currents,
a step current and white current noise, integrated by exponential Euler exactly as sbi's
``HHsimulator``::

    C dV/dt = gbar_Na m^3 h (E_Na - V) + gbar_K n^4 (E_K - V) + gbar_M p (E_K - V)
              + g_leak (E_leak - V) + I(t) + nois_fact * xi(t)

with ``I(t) = curr_level / A_soma`` between ``t_on`` and ``duration - t_on`` and the rate
functions of Pospischil et al. (threshold ``Vt``). The noise ``xi`` comes from the per-sample
seed. The output is sbi's seven summary statistics of the voltage trace: the number of spikes
during the stimulus, the resting potential's mean (before ``t_on``) and standard deviation
(over the last 10 % before ``t_on``), and the mean, variance, skewness and kurtosis of V
during the stimulus.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from simulators._prior_settings import prior_from_settings
from simulators.base import Simulator
from simulators.errors import ConfigError

__all__ = ["HodgkinHuxley", "OUTPUT_NAMES", "DEFAULT_VALUES", "DEFAULT_PRIOR", "summary_statistics"]

OUTPUT_NAMES = ("spike_count", "rest_mean", "rest_std", "mean_V", "var_V", "skew_V", "kurt_V")
DEFAULT_VALUES = {  # sbi's tutorial; conductances in mS/cm2, potentials in mV, tau_max in ms
    "gbar_Na": 50.0,
    "gbar_K": 5.0,
    "g_leak": 0.1,
    "gbar_M": 0.07,
    "tau_max": 600.0,
    "Vt": -60.0,
    "nois_fact": 0.1,
    "E_leak": -70.0,
}
DEFAULT_PRIOR: dict[str, dict[str, Any]] = {
    "gbar_Na": {"distribution": "uniform", "low": 0.5, "high": 80.0},  # sbi's tutorial
    "gbar_K": {"distribution": "uniform", "low": 1e-4, "high": 15.0},  # sbi's tutorial
    "g_leak": {"distribution": "uniform", "low": 0.01, "high": 0.3},
    "gbar_M": {"distribution": "uniform", "low": 0.001, "high": 0.2},
    "tau_max": {"distribution": "uniform", "low": 100.0, "high": 1500.0},
    "Vt": {"distribution": "uniform", "low": -75.0, "high": -50.0},
    "nois_fact": {"distribution": "uniform", "low": 0.01, "high": 0.3},
    "E_leak": {"distribution": "uniform", "low": -80.0, "high": -60.0},
}
_C, _E_NA, _E_K = 1.0, 53.0, -107.0  # uF/cm2, mV, mV
_A_SOMA = math.pi * (70.0e-4) ** 2  # cm2


def _efun(z: np.ndarray) -> np.ndarray:
    """``z / (exp(z) - 1)``, continued by ``1 - z/2`` near 0."""
    small = np.abs(z) < 1e-4
    if not small.any():  # the common case, without the cost of two np.where
        return z / np.expm1(z)
    safe = np.where(small, 1.0, z)
    return np.where(small, 1.0 - z / 2.0, safe / np.expm1(safe))


def _gates(V: np.ndarray, Vt: np.ndarray, tau_max: np.ndarray) -> tuple[np.ndarray, ...]:
    """Steady states and rates ``(m_inf, m_rate, h_inf, h_rate, n_inf, n_rate, p_inf, p_rate)``.

    A gate relaxes as ``x <- x_inf + (x - x_inf) exp(-dt * rate)``.
    """
    u = V - Vt
    alpha_m = 0.32 * _efun(-0.25 * (u - 13.0)) / 0.25
    beta_m = 0.28 * _efun(0.2 * (u - 40.0)) / 0.2
    alpha_h = 0.128 * np.exp(-(u - 17.0) / 18.0)
    beta_h = 4.0 / (1.0 + np.exp(-0.2 * (u - 40.0)))
    alpha_n = 0.032 * _efun(-0.2 * (u - 15.0)) / 0.2
    beta_n = 0.5 * np.exp(-(u - 10.0) / 40.0)
    m_rate, h_rate, n_rate = alpha_m + beta_m, alpha_h + beta_h, alpha_n + beta_n
    w = V + 35.0
    p_inf = 1.0 / (1.0 + np.exp(-0.1 * w))
    grow = np.exp(0.05 * w)
    p_rate = (3.3 * grow + 1.0 / grow) / tau_max
    return (
        alpha_m / m_rate,
        m_rate,
        alpha_h / h_rate,
        h_rate,
        alpha_n / n_rate,
        n_rate,
        p_inf,
        p_rate,
    )


def summary_statistics(v: np.ndarray, t: np.ndarray, t_on: float, t_off: float) -> np.ndarray:
    """sbi's seven summary statistics of one voltage trace.

    Parameters
    ----------
    v, t : (n_times,) float64
        Voltage (mV) and time (ms).
    t_on, t_off : float
        Start and end of the step current (ms).

    Returns
    -------
    stats : (7,) float64, in the order of :data:`OUTPUT_NAMES`
    """
    dt = t[1] - t[0]
    if not np.isfinite(v).all():
        return np.full(len(OUTPUT_NAMES), np.nan)
    clipped = np.where(v < -10.0, -10.0, v)
    clipped[:-1][np.diff(clipped) < 0] = -10.0  # keep rising edges only
    peaks = t[:-1][np.diff(clipped) < 0]  # what falls now is a spike's peak
    peaks = peaks[(peaks > t_on) & (peaks < t_off)]
    if len(peaks):
        peaks = peaks[np.append(1.0, np.diff(peaks)) > 0.5]
    stim = np.ascontiguousarray(v[(t > t_on) & (t < t_off)])
    mean = stim.mean()
    centred = stim - mean
    var = (centred**2).mean()
    std = math.sqrt(var)
    rest = np.ascontiguousarray(v[int(0.9 * t_on / dt) : int(t_on / dt)])
    return np.array(
        [
            len(peaks),
            v[t < t_on].mean(),
            rest.std(),
            mean,
            var,
            (centred**3).mean() / std**3,
            (centred**4).mean() / std**4,
        ]
    )


class HodgkinHuxley(Simulator):
    """Hodgkin-Huxley neuron with a step current; seven summary statistics as output.

    Parameters
    ----------
    inferred : list of str
        Which of :data:`DEFAULT_VALUES`' names are theta's columns (default ``gbar_Na,
        gbar_K`` with sbi's uniform prior [0.5, 80] x [1e-4, 15] mS/cm2).
    prior : dict, optional
        Prior changes per inferred name (a spec with ``distribution`` replaces the default,
        bare ``low``/``high`` move its bounds).
    values : dict, optional
        Values of the parameters that are not inferred (defaults: :data:`DEFAULT_VALUES`).
    duration, t_on, dt : float
        Trace length, current onset (it stops at ``duration - t_on``) and step, in ms.
    curr_level : float
        Step current in uA (divided by the soma's area, ``pi (70 um)^2``).
    V0 : float
        Initial voltage (mV); the gates start at their steady state.

    Notes
    -----
    Cost per sample at the default settings (12,001 time points), measured by
    ``benchmarks/simulator_costs.py`` on this shared 2-core machine: 11-13 ms at batch 256,
    26 ms at batch 64, 1.2 s one sample at a time: give it batches.
    """

    name = "hodgkin_huxley"

    def __init__(
        self,
        inferred: list[str] | tuple[str, ...] = ("gbar_Na", "gbar_K"),
        prior: dict[str, dict[str, Any]] | None = None,
        values: dict[str, float] | None = None,
        duration: float = 120.0,
        t_on: float = 10.0,
        dt: float = 0.01,
        curr_level: float = 5e-4,
        V0: float = -70.0,
    ) -> None:
        unknown = sorted(set(values or {}) - set(DEFAULT_VALUES))
        if unknown:
            raise ConfigError(
                f"hodgkin_huxley setting 'values' has unknown names {unknown}; "
                f"known: {list(DEFAULT_VALUES)}"
            )
        both = sorted(set(values or {}) & set(inferred))
        if both:
            raise ConfigError(
                f"hodgkin_huxley parameters {both} are both inferred and given fixed 'values'; "
                f"drop them from one of the two"
            )
        if not (0 < dt <= 0.05):
            raise ConfigError(f"hodgkin_huxley setting 'dt' must be in (0, 0.05] ms, got {dt}")
        if not (0 < 10 * dt <= t_on < duration / 2):
            raise ConfigError(
                f"hodgkin_huxley settings need 10 dt <= t_on < duration / 2 (the current runs "
                f"from t_on to duration - t_on), got t_on={t_on}, duration={duration}, dt={dt}"
            )
        self.inferred = tuple(inferred)
        self._prior_overrides = {k: dict(v) for k, v in (prior or {}).items()}
        self.prior = prior_from_settings(
            "hodgkin_huxley", self.inferred, self._prior_overrides, DEFAULT_PRIOR
        )
        self.values = {**DEFAULT_VALUES, **{k: float(v) for k, v in (values or {}).items()}}
        self.duration, self.t_on, self.dt = float(duration), float(t_on), float(dt)
        self.curr_level, self.V0 = float(curr_level), float(V0)
        self.output_names = OUTPUT_NAMES

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "inferred": list(self.inferred),
            "prior": self._prior_overrides,
            "values": {k: v for k, v in self.values.items() if v != DEFAULT_VALUES[k]},
            "duration": self.duration,
            "t_on": self.t_on,
            "dt": self.dt,
            "curr_level": self.curr_level,
            "V0": self.V0,
        }

    @property
    def time(self) -> np.ndarray:
        """Sample times (ms), ``(n_times,)``."""
        return np.arange(0.0, self.duration + self.dt, self.dt)

    def current(self) -> np.ndarray:
        """The step current (uA/cm2) at each sample time, ``(n_times,)``."""
        t = self.time
        current = np.zeros_like(t)
        t_off = self.duration - self.t_on
        current[int(round(self.t_on / self.dt)) : int(round(t_off / self.dt))] = (
            self.curr_level / _A_SOMA
        )
        return current

    def voltage(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Voltage traces.

        Parameters
        ----------
        theta : (batch, n_inferred)
        seeds : (batch,) uint64

        Returns
        -------
        V : (n_times, batch) float64, mV
        """
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim != 2 or theta.shape[1] != len(self.inferred):
            raise ConfigError(
                f"hodgkin_huxley theta must have shape (batch, {len(self.inferred)}) for "
                f"inferred {list(self.inferred)}, got {theta.shape}"
            )
        B, dt, current = len(theta), self.dt, self.current()
        p = {n: np.full(B, v) for n, v in self.values.items()}
        for i, name in enumerate(self.inferred):
            p[name] = theta[:, i].copy()
        n_times = len(current)
        noise = np.empty((n_times - 1, B))
        for i, seed in enumerate(np.asarray(seeds, dtype=np.uint64)):
            noise[:, i] = np.random.default_rng(int(seed)).standard_normal(n_times - 1)
        noise *= p["nois_fact"] / math.sqrt(dt)
        V = np.empty((n_times, B))
        V[0] = self.V0
        m, _, h, _, n, _, q, _ = _gates(V[0], p["Vt"], p["tau_max"])
        g_leak_E = p["g_leak"] * p["E_leak"]
        with np.errstate(all="ignore"):  # a diverging trace becomes a NaN row
            for i in range(1, n_times):
                g_na = p["gbar_Na"] * m**3 * h
                g_k = p["gbar_K"] * n**4
                g_m = p["gbar_M"] * q
                g_total = g_na + g_k + p["g_leak"] + g_m
                drive = g_na * _E_NA + (g_k + g_m) * _E_K + g_leak_E + current[i - 1]
                V_inf = (drive + noise[i - 1]) / g_total
                V[i] = V_inf + (V[i - 1] - V_inf) * np.exp(-dt * g_total / _C)
                m_inf, m_rate, h_inf, h_rate, n_inf, n_rate, q_inf, q_rate = _gates(
                    V[i], p["Vt"], p["tau_max"]
                )
                m = m_inf + (m - m_inf) * np.exp(-dt * m_rate)
                h = h_inf + (h - h_inf) * np.exp(-dt * h_rate)
                n = n_inf + (n - n_inf) * np.exp(-dt * n_rate)
                q = q_inf + (q - q_inf) * np.exp(-dt * q_rate)
        return V

    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        V, t = self.voltage(theta, seeds), self.time
        t_off = self.duration - self.t_on
        return np.stack(
            [summary_statistics(np.ascontiguousarray(V[:, i]), t, self.t_on, t_off)
             for i in range(V.shape[1])]
        ) if V.shape[1] else np.empty((0, len(OUTPUT_NAMES)))  # fmt: skip
