"""Seeded base noise: standard normal, one row per seed, independent of the batch."""

from __future__ import annotations

import numpy as np
from scipy import stats

from emulators.noise import seeded_normal
from simulators import Stream, sample_seeds


def test_rows_depend_on_their_seed_only_and_are_standard_normal() -> None:
    seeds = sample_seeds(0, np.arange(20000), Stream.SIMULATION)
    z = seeded_normal(seeds, 5)
    assert z.shape == (20000, 5) and z.dtype == np.float64
    assert z[7:9].tobytes() == seeded_normal(seeds[7:9], 5).tobytes()
    assert z[:, :3].tobytes() == seeded_normal(seeds, 3).tobytes()  # columns are stable
    for column in z.T:
        assert stats.kstest(column, "norm").pvalue > 0.01
    correlation = np.corrcoef(z.T)[np.triu_indices(5, 1)]
    assert np.abs(correlation).max() < 0.03
    other = seeded_normal(seeds, 5, stream=1)
    assert abs(np.corrcoef(z[:, 0], other[:, 0])[0, 1]) < 0.03
    assert seeded_normal(seeds[:0], 5).shape == (0, 5)
