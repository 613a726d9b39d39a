"""Per-sample seeds derived from (campaign seed, sample index).

Sample i gets the same seeds whichever worker, batch or chunk computes it, so a store's
bytes do not depend on how the campaign was scheduled.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

__all__ = ["GOLDEN_GAMMA", "Stream", "mix64", "sample_seeds"]


class Stream(IntEnum):
    """Independent random streams of one sample."""

    PRIOR = 0
    SIMULATION = 1


def sample_seeds(campaign_seed: int, indices: np.ndarray, stream: Stream) -> np.ndarray:
    """Seeds for the given sample indices and stream.

    Parameters
    ----------
    campaign_seed : int
        The campaign's seed (non-negative).
    indices : (n,) int
        Global sample indices.
    stream : Stream
        Which random stream the seeds are for.

    Returns
    -------
    seeds : (n,) uint64
    """
    seeds = np.empty(len(indices), dtype=np.uint64)
    for k, index in enumerate(np.asarray(indices, dtype=np.int64)):
        sequence = np.random.SeedSequence(campaign_seed, spawn_key=(int(index), int(stream)))
        seeds[k] = sequence.generate_state(1, dtype=np.uint64)[0]
    return seeds


GOLDEN_GAMMA = np.uint64(0x9E3779B97F4A7C15)
"""splitmix64's increment (2**64 / golden ratio): consecutive counters times it are well spread."""


def mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise: a bijective 64-bit hash (Steele et al. 2014).

    Parameters
    ----------
    z : array of uint64 (any shape)

    Returns
    -------
    hashed : uint64, same shape
    """
    z = np.asarray(z, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
