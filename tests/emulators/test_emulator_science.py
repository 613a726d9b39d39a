"""Science checks: a well-fed emulator reproduces the simulator; simplifying it costs accuracy."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from emulators import Emulator, EmulatorSpec, FidelityLevel, train_emulator
from simulators import Stream, make_simulator, sample_seeds

NOISE_VAR = 0.1

THETAS = np.array(
    [[0.0, 0.0, 0.0], [0.3, -0.2, 0.1], [-0.3, 0.2, -0.1], [0.1, 0.3, -0.2], [-0.2, -0.1, 0.3]]
)
"""Fixed parameters inside the bulk of the prior (its sd is sqrt(0.1) ~ 0.32)."""

SIMPLIFIED = FidelityLevel(
    name="simplified",
    simplification=10.0,
    description="50 rows, a 4-unit single transform, two epochs",
    emulator=EmulatorSpec(train_samples=50, hidden_features=4, transforms=1, max_epochs=2),
)


def _held_out(n: int = 4000, campaign_seed: int = 99) -> tuple[np.ndarray, np.ndarray]:
    """Fresh simulator pairs that no emulator was trained on."""
    simulator = make_simulator("gaussian_linear", dim=3, noise_var=NOISE_VAR)
    indices = np.arange(n)
    theta = simulator.prior.sample_from_seeds(sample_seeds(campaign_seed, indices, Stream.PRIOR))
    x = simulator.simulate(theta, sample_seeds(campaign_seed, indices, Stream.SIMULATION))
    return theta, x


def _exact_nll(theta: np.ndarray, x: np.ndarray) -> float:
    """Mean negative log-likelihood under the true model ``x ~ N(theta, 0.1 I)``."""
    squared = ((x - theta) ** 2).sum(axis=1) / NOISE_VAR
    return float(np.mean(0.5 * squared + 0.5 * theta.shape[1] * math.log(2 * math.pi * NOISE_VAR)))


def test_full_emulator_reproduces_the_simulator(full_checkpoint: Path) -> None:
    emulator = Emulator.load(full_checkpoint)
    seeds = sample_seeds(5, np.arange(2000), Stream.SIMULATION)
    for theta in THETAS:
        x = emulator.simulate(np.tile(theta, (2000, 1)), seeds)
        # over training seeds 0-3 the largest mean error was 0.03-0.074 (sd of x: 0.32)
        np.testing.assert_allclose(x.mean(axis=0), theta, rtol=0, atol=0.08)
        np.testing.assert_allclose(x.std(axis=0), math.sqrt(NOISE_VAR), rtol=0.15)


def test_simplified_level_is_measurably_worse(
    full_checkpoint: Path, shared_gaussian_store: Path, tmp_path: Path
) -> None:
    path = train_emulator(shared_gaussian_store, SIMPLIFIED, tmp_path, seed=0, progress=False)
    simplified, full = Emulator.load(path), Emulator.load(full_checkpoint)
    assert simplified.training["n_train"] + simplified.training["n_val"] == 50
    theta, x = _held_out()
    exact = _exact_nll(theta, x)
    nll_full = -float(full.log_prob(x, theta).mean())
    nll_simplified = -float(simplified.log_prob(x, theta).mean())
    assert nll_full < exact + 0.1, (nll_full, exact)
    assert nll_simplified > nll_full + 0.3, (nll_simplified, nll_full, exact)
