"""Explicit seeds for the inference layer.

Every random step of training, sampling and scoring takes an integer seed; pieces of work that
share one seed (chunks of a batch, observations of a score) get independent child seeds from
:func:`child_seed`. Torch's and numpy's global generators are only ever used inside
:func:`seeded`, which restores their state on exit, so calling this layer never changes
anyone else's random stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from simulators.errors import ConfigError

__all__ = ["check_seed", "child_seed", "seeded"]


def check_seed(seed: int) -> int:
    """Return ``seed`` as an int.

    Raises
    ------
    ConfigError
        If ``seed`` is not a non-negative integer.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}; pass e.g. seed=0")
    return int(seed)


def child_seed(seed: int, *key: int) -> int:
    """An independent seed for the piece of work ``key`` (e.g. a chunk index) under ``seed``.

    Parameters
    ----------
    seed : int
        Non-negative parent seed.
    *key : int
        Non-negative integers naming the piece of work.

    Returns
    -------
    seed : int
        In ``[0, 2**32)`` (accepted by torch, numpy and scikit-learn alike), a deterministic
        function of ``(seed, key)``.
    """
    sequence = np.random.SeedSequence(check_seed(seed), spawn_key=tuple(int(k) for k in key))
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch's CPU generator and numpy's global one inside the block; restore both on exit.

    numpy's global generator is included because sbi's slice samplers draw from it.
    """
    import torch

    state = np.random.get_state()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(check_seed(seed))
            np.random.seed(child_seed(seed, 0x5EED))
            yield
    finally:
        np.random.set_state(state)
