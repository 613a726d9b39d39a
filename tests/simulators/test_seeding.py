"""Seeds depend on (campaign seed, index, stream) only."""

import numpy as np

from simulators import Stream, sample_seeds


def test_seeds_do_not_depend_on_which_indices_are_asked_together():
    all_at_once = sample_seeds(7, np.arange(100), Stream.SIMULATION)
    piecewise = np.concatenate(
        [sample_seeds(7, np.arange(i, i + 10), Stream.SIMULATION) for i in range(0, 100, 10)]
    )
    assert all_at_once.tobytes() == piecewise.tobytes()
    assert all_at_once.dtype == np.uint64


def test_streams_and_campaigns_differ():
    idx = np.arange(50)
    a = sample_seeds(7, idx, Stream.SIMULATION)
    assert len(set(a.tolist())) == 50
    assert not set(a.tolist()) & set(sample_seeds(7, idx, Stream.PRIOR).tolist())
    assert not set(a.tolist()) & set(sample_seeds(8, idx, Stream.SIMULATION).tolist())
