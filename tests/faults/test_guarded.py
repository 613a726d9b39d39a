"""The guarded path for simulator calls outside campaigns: raising, NaN, crashing and hanging
simulators cost their rows, never the caller."""

import os
import sys
import time

import cloudpickle
import numpy as np
import pytest

from cluster.guarded import SimulatorFailedError, guarded_simulate
from simulators import GaussianLinear, Simulator, Stream, make_simulator, sample_seeds
from simulators.store import Status

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class _Bad(Simulator):
    """Gaussian-linear outputs, except: raises where theta_0 > ``raise_above``, hangs (GIL held)
    where theta_0 < ``hang_below``, kills its own process where theta_1 > ``crash_above``."""

    name = "bad"

    def __init__(self, raise_above=9.0, hang_below=-9.0, crash_above=9.0):
        self.inner = GaussianLinear(dim=2)
        self.prior = self.inner.prior
        self.output_names = self.inner.output_names
        self.raise_above, self.hang_below, self.crash_above = raise_above, hang_below, crash_above

    @property
    def settings(self):
        return {}

    def simulate(self, theta, seeds):
        if (theta[:, 0] > self.raise_above).any():
            raise RuntimeError("solver diverged")
        if (theta[:, 1] > self.crash_above).any():
            os._exit(9)
        if (theta[:, 0] < self.hang_below).any():
            sum(range(10**13))
        return self.inner.simulate(theta, seeds)


def _draws(n, seed=0):
    prior = GaussianLinear(dim=2).prior
    indices = np.arange(n)
    return (
        prior.sample_from_seeds(sample_seeds(seed, indices, Stream.PRIOR)),
        sample_seeds(seed, indices, Stream.SIMULATION),
    )


def test_raising_for_a_tenth_of_theta_loses_those_rows_only():
    theta, seeds = _draws(200)
    threshold = np.quantile(theta[:, 0], 0.9)
    bad = theta[:, 0] > threshold
    assert bad.sum() == 20
    result = guarded_simulate(
        _Bad(raise_above=threshold), theta, seeds, timeout_s=10, retries=1, workers=2
    )
    np.testing.assert_array_equal(result.ok, ~bad)
    assert np.isnan(result.x[bad]).all() and result.n_failed == 20
    assert set(result.status[bad]) == {Status.FAILED}
    assert {result.errors[i] for i in np.flatnonzero(bad)} == {"RuntimeError: solver diverged"}
    # the rows that worked are the true simulator's, row by row
    truth = make_simulator("gaussian_linear", dim=2).simulate(theta[~bad], seeds[~bad])
    np.testing.assert_array_equal(result.x[~bad], truth)
    assert result.counts() == {"ok": 180, "failed": 20}
    assert result.describe().startswith("20 of 200 rows lost (20 failed); first failed: row ")
    assert result.require_some("emulator error") is result


def test_a_hanging_simulator_returns_within_a_bounded_time():
    theta, seeds = _draws(60, seed=1)
    threshold = np.sort(theta[:, 0])[2]  # the 2 lowest theta_0 hang
    began = time.perf_counter()
    result = guarded_simulate(_Bad(hang_below=threshold), theta, seeds, timeout_s=2, retries=0)
    took = time.perf_counter() - began
    hung = theta[:, 0] < threshold
    assert hung.sum() == 2
    np.testing.assert_array_equal(result.ok, ~hung)
    assert set(result.status[hung]) == {Status.TIMEOUT}
    assert all(result.errors[i].startswith("timed out after 2 s") for i in np.flatnonzero(hung))
    # two hangs: each found by a batch (2 s beyond its expected time), then alone (2 s again)
    print(f"60 rows, 2 hanging: {took:.1f} s")
    assert took < 4 * 2 * 2 + 10


def test_a_crashing_process_and_all_rows_failing():
    theta, seeds = _draws(20, seed=2)
    crash = theta[:, 1] > np.sort(theta[:, 1])[-3]  # the 2 highest theta_1 kill the process
    result = guarded_simulate(_Bad(crash_above=np.sort(theta[:, 1])[-3]), theta, seeds)
    np.testing.assert_array_equal(result.ok, ~crash)
    assert all("process died (exit code 9)" in result.errors[i] for i in np.flatnonzero(crash))
    everything = guarded_simulate(_Bad(raise_above=-9.0), theta, seeds, retries=0)
    assert not everything.ok.any()
    with pytest.raises(
        SimulatorFailedError,
        match=r"posterior predictive checks: every one of "
        r"the 20 simulations failed \(20 of 20 rows lost \(20 failed\); first "
        r"failed: row 0: RuntimeError: solver diverged\)",
    ):
        everything.require_some("posterior predictive checks")
