"""Standard normal noise as a vectorised function of per-sample seeds.

Row i of :func:`seeded_normal` depends on ``seeds[i]`` (and the stream) alone, like a
``numpy.random.default_rng(seed)`` per row, but costs nanoseconds instead of ~10 microseconds
per row: each value hashes ``(seed, stream, column)`` with the splitmix64 finaliser into a
53-bit uniform, and pairs of uniforms become normals by the Box-Muller transform. Emulators draw
their base noise this way, so sampling is not limited by creating one generator per row.
"""

from __future__ import annotations

import numpy as np

from simulators.seeding import GOLDEN_GAMMA, mix64

__all__ = ["seeded_normal"]


def seeded_normal(seeds: np.ndarray, dim: int, stream: int = 0) -> np.ndarray:
    """Independent standard normal draws, one row per seed.

    Parameters
    ----------
    seeds : (n,) uint64
    dim : int
        Columns per row.
    stream : int
        Another stream gives independent draws for the same seeds (in ``[0, 2**31)``).

    Returns
    -------
    z : (n, dim) float64
    """
    seeds = np.asarray(seeds, dtype=np.uint64).reshape(-1)
    pairs = (dim + 1) // 2
    counter = (
        np.arange(2 * pairs, dtype=np.uint64) + np.uint64(1) + (np.uint64(stream) << np.uint64(32))
    )
    with np.errstate(over="ignore"):
        bits = mix64(mix64(seeds)[:, None] + counter[None, :] * GOLDEN_GAMMA)
    uniform = ((bits >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53
    radius = np.sqrt(-2.0 * np.log(uniform[:, 0::2]))
    angle = 2.0 * np.pi * uniform[:, 1::2]
    # column 2k is r_k cos, column 2k+1 is r_k sin: the first columns do not depend on dim
    z = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=2)
    return z.reshape(len(seeds), 2 * pairs)[:, :dim]
