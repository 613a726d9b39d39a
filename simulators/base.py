"""The Simulator interface every model, true or emulated, implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from simulators.prior import Prior

__all__ = ["Simulator", "ExactPosterior"]


class Simulator(ABC):
    """A stochastic model ``x ~ p(x | theta)`` with a prior over ``theta``.

    Randomness comes only from the per-sample ``seeds``: row i of the output depends on
    ``theta[i]`` and ``seeds[i]`` alone, whatever the batch it is computed in.

    Attributes
    ----------
    name : str
        Registry name (or a descriptive name for an emulator).
    prior : Prior
        Named parameters and their prior.
    output_names : tuple of str
        Names of the columns of ``x``.
    """

    name: str
    prior: Prior
    output_names: tuple[str, ...]

    @property
    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """JSON-serialisable settings that, with ``name``, rebuild this simulator."""

    @abstractmethod
    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Simulate one output per parameter vector.

        Parameters
        ----------
        theta : (batch, n_params) float64
        seeds : (batch,) uint64

        Returns
        -------
        x : (batch, n_outputs) float64
        """


class ExactPosterior(ABC):
    """Mixin for simulators whose posterior is known in closed form."""

    @abstractmethod
    def sample_posterior(self, x_o: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """Draw from the exact posterior ``p(theta | x_o)``.

        Parameters
        ----------
        x_o : (n_outputs,)
        n : int
        rng : numpy Generator

        Returns
        -------
        theta : (n, n_params) float64
        """
