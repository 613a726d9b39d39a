"""How observations differ from the simulator: perfect, with added noise, or contaminated.

Real data differ from every simulator. An :class:`ObservationModel` turns true-simulator outputs
into the observations a study compares posteriors at: ``perfect`` keeps them, ``noise`` adds
Gaussian noise of ``scale`` output standard deviations to every output, and ``contamination``
replaces a ``fraction`` of the outputs of each observation by outliers ``scale`` standard
deviations away (random sign). Seeded, so the same observations come back every time.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from inference.seeds import check_seed
from simulators.errors import ConfigError

__all__ = ["ObservationModel"]


class ObservationModel(BaseModel):
    """A declared observation model.

    Attributes
    ----------
    kind : {"perfect", "noise", "contamination"}
    scale : float
        Noise standard deviation (``noise``) or outlier distance (``contamination``), in units
        of each output's standard deviation over the reference outputs.
    fraction : float
        Fraction of outputs contaminated per observation (``contamination`` only).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["perfect", "noise", "contamination"] = "perfect"
    scale: float = Field(1.0, ge=0)
    fraction: float = Field(0.1, ge=0, le=1)

    @property
    def misspecified(self) -> bool:
        """Whether observations differ from true-simulator outputs."""
        return self.kind != "perfect" and self.scale > 0

    def apply(self, x: np.ndarray, output_std: np.ndarray, seed: int) -> np.ndarray:
        """Observations made from true-simulator outputs.

        Parameters
        ----------
        x : (n_obs, d)
            True-simulator outputs.
        output_std : (d,)
            Standard deviation of each output (e.g. over held-out simulator outputs).
        seed : int

        Returns
        -------
        x_obs : (n_obs, d)
        """
        x = np.asarray(x, dtype=np.float64)
        output_std = np.broadcast_to(np.asarray(output_std, dtype=np.float64), x.shape[1:])
        if x.ndim != 2:
            raise ConfigError(f"x must be (n_obs, d), got {x.shape}")
        rng = np.random.default_rng(check_seed(seed))
        if self.kind == "noise":
            return x + self.scale * output_std * rng.standard_normal(x.shape)
        if self.kind == "contamination":
            n_bad = int(round(self.fraction * x.shape[1]))
            out = x.copy()
            for row in out:
                columns = rng.choice(x.shape[1], size=n_bad, replace=False)
                sign = rng.choice([-1.0, 1.0], size=n_bad)
                row[columns] += sign * self.scale * output_std[columns]
            return out
        return x.copy()
