"""A finished Gaussian-linear store, written with the store API, for the training fault tests.

A module of its own, not a conftest, so test modules can import it by a unique name.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simulators import Stream, make_simulator, sample_seeds
from simulators.store import Status, create_store, store_identity, write_rows


def write_gaussian_store(path: Path, n: int = 1000, **settings: float) -> Path:
    """A finished store of ``n`` valid Gaussian-linear rows (all ``ok``), one chunk."""
    simulator = make_simulator("gaussian_linear", **settings)
    theta = simulator.prior.sample_from_seeds(sample_seeds(0, np.arange(n), Stream.PRIOR))
    seeds = sample_seeds(0, np.arange(n), Stream.SIMULATION)
    identity = store_identity(simulator, n_samples=n, chunk_size=n, campaign_seed=0)
    create_store(path, identity, simulator.prior.names, simulator.output_names)
    x = simulator.simulate(theta, seeds)
    ok = np.full(n, Status.OK, dtype=np.int8)
    write_rows(path, 0, theta=theta, x=x, seed=seeds, elapsed=np.zeros(n), status=ok)
    return path
