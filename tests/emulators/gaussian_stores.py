"""The Gaussian-linear stores and the ``FULL`` level the emulator tests share.

A module of its own, not the conftest: test modules import from it, and ``from conftest
import`` picks whichever conftest pytest loaded last when several test folders run together.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from emulators import EmulatorSpec, FidelityLevel
from simulators import Stream, make_simulator, sample_seeds
from simulators.store import Status, create_store, store_identity, write_rows

NOISE_VAR = 0.1
"""Noise variance of the Gaussian-linear simulator in these tests (sbibm's value)."""

FULL = FidelityLevel(
    name="full",
    simplification=0.0,
    description="all 2000 rows, one small affine MAF transform",
    # Sized to the data: with 1800 training rows the default MAF (3 transforms of 2x64) overfits
    # and misses the conditional sd by up to ~19%; one transform with a 16-unit layer is exact
    # for a linear Gaussian model and stays within ~0.05 in mean and ~10% in sd.
    emulator=EmulatorSpec(
        transforms=1,
        hidden_layers=1,
        hidden_features=16,
        batch_size=64,
        learning_rate=3e-3,
        patience=20,
        max_epochs=150,
    ),
)
"""The least simplified level of the tests; trained once per session."""


def write_gaussian_store(
    path: Path,
    n: int = 2000,
    *,
    campaign_seed: int = 0,
    n_valid: int | None = None,
    chunk_size: int | None = None,
) -> Path:
    """Simulate ``n`` Gaussian-linear rows (dim 3) and write them (as one chunk by default).

    Rows from ``n_valid`` on are marked INVALID (with NaN outputs), as a campaign would.
    """
    simulator = make_simulator("gaussian_linear", dim=3, noise_var=NOISE_VAR)
    indices = np.arange(n)
    theta = simulator.prior.sample_from_seeds(sample_seeds(campaign_seed, indices, Stream.PRIOR))
    seeds = sample_seeds(campaign_seed, indices, Stream.SIMULATION)
    x = simulator.simulate(theta, seeds)
    status = np.full(n, Status.OK, dtype=np.int8)
    if n_valid is not None:
        status[n_valid:] = Status.INVALID
        x[n_valid:] = np.nan
    chunk = chunk_size or n
    identity = store_identity(simulator, n_samples=n, chunk_size=chunk, campaign_seed=campaign_seed)
    create_store(path, identity, simulator.prior.names, simulator.output_names)
    for start in range(0, n, chunk):
        rows = slice(start, start + chunk)
        write_rows(
            path,
            start,
            theta=theta[rows],
            x=x[rows],
            seed=seeds[rows],
            elapsed=np.zeros(len(theta[rows])),
            status=status[rows],
        )
    return path
