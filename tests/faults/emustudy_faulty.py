"""A plugin simulator for the fault tests (see faulty_plugin.py): Gaussian linear, but raising,
returning NaN or hanging (holding the GIL) for shares of its rows, chosen by their seeds."""

import numpy as np

from simulators import GaussianLinear


def fate(seeds, raise_share, nan_share, hang_share):
    """Per row: 0 fine, 1 raises, 2 NaN, 3 hangs."""
    u = (np.asarray(seeds, dtype=np.uint64) % 1000).astype(float) / 1000
    edges = np.cumsum([raise_share, nan_share, hang_share])
    return np.where(u < edges[0], 1, np.where(u < edges[1], 2, np.where(u < edges[2], 3, 0)))


class FaultyGaussian(GaussianLinear):
    name = "faulty_gaussian"

    def __init__(self, raise_share=0.0, nan_share=0.0, hang_share=0.0, **settings):
        super().__init__(**settings)
        self.shares = (float(raise_share), float(nan_share), float(hang_share))

    @property
    def settings(self):
        raise_share, nan_share, hang_share = self.shares
        return {
            **super().settings,
            "raise_share": raise_share,
            "nan_share": nan_share,
            "hang_share": hang_share,
        }

    def simulate(self, theta, seeds):
        kind = fate(seeds, *self.shares)
        if (kind == 1).any():
            raise RuntimeError("solver diverged")
        if (kind == 3).any():
            sum(range(10**13))  # one C call: holds the GIL for hours
        x = super().simulate(theta, seeds)
        x[kind == 2] = np.nan
        return x
