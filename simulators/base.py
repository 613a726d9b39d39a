"""The Simulator interface every model, true or emulated, implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from simulators.errors import ConfigError
from simulators.prior import Prior

__all__ = ["Simulator", "ExactPosterior", "Likelihood", "likelihood_pairs"]


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


class Likelihood(ABC):
    """Mixin for simulators whose likelihood ``p(x | theta)`` can be evaluated exactly.

    A simulator that declares it can be given a reference posterior by MCMC on its own
    likelihood (:mod:`inference.likelihood_reference`), without training anything.
    """

    @abstractmethod
    def log_likelihood(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Pairwise log density ``log p(x_i | theta_i)``.

        Parameters
        ----------
        theta : (n, n_params)
        x : (n, n_outputs)
            Row i is scored under the simulator run at ``theta[i]``.

        Returns
        -------
        log_likelihood : (n,) float64
            Normalised log densities in ``x``; ``-inf`` where ``x[i]`` is impossible.
        """

    def posterior_symmetries(self) -> tuple[Callable[[np.ndarray], np.ndarray], ...]:
        """Maps ``g`` of ``theta`` that leave prior times likelihood unchanged, for every ``x``.

        Each ``g`` maps ``(n, n_params)`` to ``(n, n_params)``, preserves volume, and
        ``prior(g theta) p(x | g theta) = prior(theta) p(x | theta)``; with the identity they
        form a group (list every element but the identity). A posterior with modes that are
        images of each other (two moons, SLCP) then gets an MCMC reference whose chains need
        not jump between the modes. Default: none.
        """
        return ()


def likelihood_pairs(
    theta: np.ndarray, x: np.ndarray, n_params: int, n_outputs: int
) -> tuple[np.ndarray, np.ndarray]:
    """Check and convert the arguments of :meth:`Likelihood.log_likelihood`.

    Parameters
    ----------
    theta : (n, n_params)
    x : (n, n_outputs)

    Returns
    -------
    theta, x : float64 arrays of those shapes

    Raises
    ------
    ConfigError
        If the shapes do not match.
    """
    theta = np.asarray(theta, dtype=np.float64)
    x = np.asarray(x, dtype=np.float64)
    if theta.ndim != 2 or theta.shape[1] != n_params or x.shape != (theta.shape[0], n_outputs):
        raise ConfigError(
            f"log_likelihood needs theta of shape (n, {n_params}) and x of shape "
            f"(n, {n_outputs}), one x row per theta row, got {theta.shape} and {x.shape}; "
            "repeat a single observation with np.broadcast_to(x_o, (n, n_outputs))"
        )
    return theta, x
