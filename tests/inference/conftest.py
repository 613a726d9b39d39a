"""Shared fixtures of the inference tests: the 3-D Gaussian linear problem and two posteriors.

The posteriors are trained once per session: ``good_posterior`` on pairs from the true simulator,
``wrong_posterior`` on pairs from a deliberately wrong simulator that keeps only ``NOISE_KEPT`` of
the true noise (as an emulator that learned the mean but lost the scatter would), so its posterior
is overconfident and, being narrower, centred elsewhere.

Torch runs on one thread in these tests: the networks are tiny, and two threads on a busy
two-core machine can make training tens of times slower (busy-waiting threads).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from inference import NPEPosterior, NPESettings, train_npe
from simulators import GaussianLinear, Stream, make_simulator, sample_seeds

N_TRAIN = 3000
N_TEST = 1000
NOISE_KEPT = 0.1
SMALL_MAF = NPESettings(hidden_features=32, num_transforms=2)


@dataclass(frozen=True)
class Problem:
    """A simulator with training pairs (campaign seed 0) and held-out test pairs (seed 1)."""

    sim: GaussianLinear
    theta: np.ndarray
    x: np.ndarray
    theta_test: np.ndarray
    x_test: np.ndarray


def simulate_pairs(
    sim: GaussianLinear, n: int, campaign_seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` prior draws and their simulated outputs, reproducible from ``campaign_seed``."""
    theta = sim.prior.sample(np.random.default_rng(campaign_seed), n)
    x = sim.simulate(theta, sample_seeds(campaign_seed, np.arange(n), Stream.SIMULATION))
    return theta, x


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def problem() -> Problem:
    sim = make_simulator("gaussian_linear", dim=3)
    theta, x = simulate_pairs(sim, N_TRAIN, 0)
    theta_test, x_test = simulate_pairs(sim, N_TEST, 1)
    return Problem(sim, theta, x, theta_test, x_test)


@pytest.fixture(scope="session")
def small_maf() -> NPESettings:
    return SMALL_MAF


@pytest.fixture(scope="session")
def good_posterior(problem: Problem) -> NPEPosterior:
    return train_npe(problem.theta, problem.x, problem.sim.prior, SMALL_MAF, seed=0)


@pytest.fixture(scope="session")
def wrong_posterior(problem: Problem) -> NPEPosterior:
    x_wrong = problem.theta + NOISE_KEPT * (problem.x - problem.theta)
    return train_npe(problem.theta, x_wrong, problem.sim.prior, SMALL_MAF, seed=0)
