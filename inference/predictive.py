"""Posterior predictive check: run the TRUE simulator on posterior draws, compare to the data.

For each observation ``x_o``, ``n`` posterior draws go through the true simulator (not the
emulator), and the distance of each simulated output to ``x_o`` is measured in units of the
outputs' standard deviation, divided by ``sqrt(d)`` so the value does not grow with the number
of outputs. A posterior that put mass where the simulator cannot reproduce the data scores high.
"""

from __future__ import annotations

import warnings

import numpy as np

from simulators.base import Simulator
from simulators.errors import ConfigError
from simulators.seeding import Stream, sample_seeds

__all__ = ["predictive_distance"]


def predictive_distance(
    simulator: Simulator,
    draws: np.ndarray,
    x_obs: np.ndarray,
    output_std: np.ndarray,
    seed: int,
    *,
    with_failures: bool = False,
    seeds: np.ndarray | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Mean scaled distance between true-simulator outputs at posterior draws and each ``x_o``.

    Parameters
    ----------
    simulator : Simulator
        The true simulator.
    draws : (S, n_obs, p)
        Posterior draws at each observation.
    x_obs : (n_obs, d)
    output_std : (d,)
        Scale of each output (e.g. standard deviation over held-out simulator outputs).
    seed : int
        Campaign seed of the simulator runs (row ``r`` of the flattened draws gets sample seed
        ``r`` of it), unless ``seeds`` is given.
    seeds : (S, n_obs) uint64, optional
        The simulation seed of each draw, so that an observation's runs do not depend on which
        other observations are scored with it.

    Returns
    -------
    distance : (n_obs,)
        ``mean_s |(x_s - x_o) / output_std| / sqrt(d)`` over draws whose simulation is finite
        (NaN if none is).
    failed : (n_obs,), with ``with_failures``
        Share of the draws whose simulation failed, timed out or was not finite.
    """
    draws = np.asarray(draws, dtype=np.float64)
    x_obs = np.asarray(x_obs, dtype=np.float64)
    if draws.ndim != 3 or x_obs.ndim != 2 or draws.shape[1] != len(x_obs):
        raise ConfigError(
            f"draws must be (S, n_obs, p) and x_obs (n_obs, d), got {draws.shape} and {x_obs.shape}"
        )
    s, n_obs, p = draws.shape
    theta = draws.reshape(-1, p)
    if seeds is None:
        seeds = sample_seeds(seed, np.arange(len(theta)), Stream.SIMULATION)
    seeds = np.asarray(seeds, dtype=np.uint64).reshape(-1)
    if len(seeds) != len(theta):
        raise ConfigError(f"seeds must be (S, n_obs) = {draws.shape[:2]}, got {len(seeds)} seeds")
    x_sim = np.asarray(simulator.simulate(theta, seeds), dtype=np.float64)
    x_sim = x_sim.reshape(s, n_obs, -1)
    scale = np.where(np.asarray(output_std) > 0, output_std, 1.0)
    distance = np.linalg.norm((x_sim - x_obs[None]) / scale, axis=-1) / np.sqrt(x_sim.shape[-1])
    finite = np.isfinite(distance)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an observation with no finite draw
        mean = np.nanmean(np.where(finite, distance, np.nan), axis=0)
    return (mean, 1.0 - finite.mean(axis=0)) if with_failures else mean
