"""``timeout_s`` is per sample: a hung sample in a chunk of the shipped Lorenz-96 size is found
within ``2 x timeout_s`` plus the chunk's normal time, not ``timeout_s`` times its rows.

The simulator is a plugin-style vectorised one (1 ms per row, like a cheap solver over a batch)
that hangs, holding the GIL, for one chosen theta.
"""

import sys
import time
from pathlib import Path

import cloudpickle
import numpy as np
import yaml

from cluster import CampaignSettings
from cluster.execute import close_worker_children, simulate_rows
from simulators import GaussianLinear, Simulator, Stream, sample_seeds
from simulators.store import Status

cloudpickle.register_pickle_by_value(sys.modules[__name__])

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TIMEOUT_S = 2.0
SECONDS_PER_ROW = 0.001


class _Hangs(Simulator):
    """theta itself plus noise, 1 ms per row; never answers for theta_0 == ``hang_at``."""

    name = "hangs"

    def __init__(self, hang_at=None):
        self.prior = GaussianLinear(dim=2).prior
        self.output_names = ("a", "b")
        self.hang_at = hang_at

    @property
    def settings(self):
        return {}

    def simulate(self, theta, seeds):
        if self.hang_at is not None and (theta[:, 0] == self.hang_at).any():
            sum(range(10**13))  # one C call: holds the GIL for hours
        time.sleep(SECONDS_PER_ROW * len(theta))
        noise = np.array([np.random.default_rng(int(s)).normal(size=2) for s in seeds])
        return theta + 0.1 * noise


def _rows(n, seed):
    theta = GaussianLinear(dim=2).prior.sample_from_seeds(
        sample_seeds(seed, np.arange(n), Stream.PRIOR)
    )
    return theta, sample_seeds(seed, np.arange(n), Stream.SIMULATION)


def test_a_hung_sample_in_a_shipped_l96_chunk_is_found_within_twice_the_timeout():
    chunk = yaml.safe_load((CONFIGS / "lorenz96.yaml").read_text())["budgets"]["chunk_size"]
    assert chunk == 500
    settings = CampaignSettings(timeout_s=TIMEOUT_S, retries=0)
    warm_theta, warm_seeds = _rows(chunk, seed=1)
    theta, seeds = _rows(chunk, seed=2)
    hung = 317
    simulator = _Hangs(hang_at=theta[hung, 0])
    try:
        # a first chunk on this worker measures the simulator's pace (ramping up from 1 row)
        began = time.perf_counter()
        _, status, _, _, _ = simulate_rows(
            simulator, warm_theta, warm_seeds, settings, reuse_child=True
        )
        normal = time.perf_counter() - began
        assert (status == Status.OK).all()
        began = time.perf_counter()
        x, status, attempts, error, elapsed = simulate_rows(
            simulator, theta, seeds, settings, reuse_child=True
        )
        took = time.perf_counter() - began
    finally:
        close_worker_children()
    assert np.flatnonzero(status != Status.OK).tolist() == [hung]
    assert status[hung] == Status.TIMEOUT and attempts[hung] == 1
    assert error[hung].startswith(f"timed out after {TIMEOUT_S:g} s beyond its expected")
    # the hung row held its (single-row) call for timeout_s plus its expected time, no more
    assert TIMEOUT_S <= elapsed[hung] < TIMEOUT_S + 1.0
    # the batch noticed the hang after timeout_s + its expected time, then every row ran alone
    # (rows x 1 ms plus a call's overhead each): far from timeout_s x rows = 1000 s
    bound = 2 * TIMEOUT_S + 3 * normal + 5.0
    print(f"chunk of {chunk}: normal {normal:.2f} s, with one hang {took:.2f} s (< {bound:.1f})")
    assert took < bound
    ok = status == Status.OK
    reference = _Hangs().simulate(theta[ok], seeds[ok])
    np.testing.assert_array_equal(x[ok], reference)  # the seeds, not the batching, decide x


def test_a_hang_in_a_fresh_workers_first_chunk_is_bounded_too():
    theta, seeds = _rows(500, seed=3)
    hung = 450
    settings = CampaignSettings(timeout_s=TIMEOUT_S, retries=0)
    began = time.perf_counter()
    _, status, _, error, _ = simulate_rows(_Hangs(hang_at=theta[hung, 0]), theta, seeds, settings)
    took = time.perf_counter() - began
    assert np.flatnonzero(status != Status.OK).tolist() == [hung]
    assert error[hung].startswith("timed out after 2 s")
    print(f"fresh worker, chunk of 500 with one hang: {took:.2f} s")
    assert took < 2 * TIMEOUT_S + 15.0
