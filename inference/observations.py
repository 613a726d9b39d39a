"""Observations: where a study's come from, how they differ from the simulator, their checks.

The one home of observations. :func:`study_observations` reads a study's observation store,
counts (and drops) observations with non-finite outputs, and passes the rest through an
:class:`ObservationModel`: ``perfect`` keeps them, ``noise`` adds Gaussian noise of ``scale``
output standard deviations to every output, and ``contamination`` replaces a ``fraction`` of the
outputs of each observation by outliers ``scale`` standard deviations away (random sign); seeded,
so the same observations come back every time. Observations a user brings as a file (CSV, NPY,
NetCDF, Zarr; optionally with their true parameters) are read by
:func:`inference.observation_files.read_observations`.

An observation with NaN, of the wrong shape, or whose true parameters lie outside the prior's
support would otherwise surface far away (a NaN sample, an infinite NLTP); the checks here refuse
it where it is given, naming the observation by its index and saying what to do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from inference.seeds import check_seed
from simulators.errors import ConfigError
from simulators.prior import Prior
from simulators.store import load_pairs, open_store

__all__ = [
    "ObservationModel",
    "Observations",
    "check_in_support",
    "check_observation",
    "check_observations",
    "study_observations",
]

_SHOWN = 10


def _as_float(values: object, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"{name} must hold numbers, got {type(values).__name__}: {err}; pass a float array"
        ) from err


def _rows_list(rows: np.ndarray) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:_SHOWN])
    return shown + (f" and {len(rows) - _SHOWN} more" if len(rows) > _SHOWN else "")


def check_observations(x: object, x_dim: int, name: str = "x_obs") -> np.ndarray:
    """Observations as a finite ``(n_obs, x_dim)`` float64 array.

    Parameters
    ----------
    x : array-like, (n_obs, x_dim)
    x_dim : int
        Number of simulator outputs.
    name : str
        How the caller's argument is called in messages.

    Returns
    -------
    x : (n_obs, x_dim) float64

    Raises
    ------
    ConfigError
        For another shape, or NaN or infinite values (naming the first such observation).
    """
    array = _as_float(x, name)
    if array.ndim != 2 or array.shape[1] != x_dim:
        raise ConfigError(
            f"{name} must have shape (n_obs, {x_dim}), one row of {x_dim} simulator outputs per "
            f"observation, got shape {array.shape}; reshape it (a single observation "
            f"`x_o` is `x_o.reshape(1, {x_dim})`)"
        )
    bad = ~np.isfinite(array)
    if bad.any():
        rows = np.flatnonzero(bad.any(axis=1))
        first = int(rows[0])
        columns = [int(c) for c in np.flatnonzero(bad[first])]
        raise ConfigError(
            f"{name}[{first}] (observation {first}) has NaN or infinite values at output "
            f"column(s) {columns}; observations with such values: {_rows_list(rows)}. Drop or "
            "replace those observations (e.g. `x[np.isfinite(x).all(axis=1)]`)"
        )
    return array


def check_observation(x_o: object, x_dim: int, name: str = "x_o") -> np.ndarray:
    """One observation as a finite ``(x_dim,)`` float64 array.

    Raises
    ------
    ConfigError
        For another shape, or NaN or infinite values (naming the output columns).
    """
    array = _as_float(x_o, name)
    if array.shape != (x_dim,):
        raise ConfigError(
            f"{name} must have shape ({x_dim},) (one observation), got shape {array.shape}; "
            "pass a single row of simulator outputs (sample_batched takes several)"
        )
    bad = np.flatnonzero(~np.isfinite(array))
    if len(bad):
        raise ConfigError(
            f"{name} has NaN or infinite values at output column(s) {[int(c) for c in bad]}; "
            "a posterior cannot condition on them: replace them or use another observation"
        )
    return array


def check_in_support(theta: np.ndarray, prior: Prior, name: str) -> None:
    """Refuse finite parameter rows outside the prior's support (rows with NaN are ignored).

    Parameters
    ----------
    theta : (n, n_params)
    prior : Prior
    name : str
        How the caller's argument is called in messages.

    Raises
    ------
    ConfigError
        Naming the first row outside, its parameter, value and the support.
    """
    theta = np.asarray(theta, dtype=np.float64)
    finite = np.isfinite(theta).all(axis=1)
    outside = np.zeros(len(theta), dtype=bool)
    for j, parameter in enumerate(prior.parameters):
        low, high = parameter.support
        outside |= finite & ((theta[:, j] < low) | (theta[:, j] > high))
    if not outside.any():
        return
    rows = np.flatnonzero(outside)
    first = int(rows[0])
    for j, parameter in enumerate(prior.parameters):
        low, high = parameter.support
        if not low <= theta[first, j] <= high:
            break
    raise ConfigError(
        f"{name}[{first}] lies outside the prior's support: {parameter.name} = "
        f"{theta[first, j]:g} is not in [{low:g}, {high:g}] (rows outside: {_rows_list(rows)}). "
        "The prior gives those parameters zero density, so no posterior can be scored on them: "
        "drop those rows, or use pairs simulated from this prior"
    )


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


@dataclass(frozen=True)
class Observations:
    """A study's observations and where they came from.

    Attributes
    ----------
    x : (n_obs, d)
        Finite observations, after the observation model.
    source : str
        The store (or file) they were read from.
    n_non_finite : int
        Observations dropped because an output was NaN or infinite (failed simulator runs).
    model : ObservationModel
    """

    x: np.ndarray
    source: str
    n_non_finite: int
    model: ObservationModel


def study_observations(
    observations_store: str | os.PathLike[str],
    test_store: str | os.PathLike[str],
    model: ObservationModel,
    seed: int,
) -> Observations:
    """A study's observations: its observation store's finite rows through ``model``.

    Output scales for the observation model come from the held-out test store.

    Raises
    ------
    ConfigError
        If no observation is finite (every observation run failed).
    """
    x = open_store(observations_store)["x"].values
    finite = np.isfinite(x).all(axis=1)
    if not finite.any():
        raise ConfigError(
            f"all {len(x)} observations in {observations_store} have non-finite outputs (failed "
            "simulator runs); check the simulator's failures in `emustudy status` and rerun"
        )
    _, x_test, _ = load_pairs(test_store)
    return Observations(
        x=model.apply(x[finite], x_test.std(axis=0), seed),
        source=str(observations_store),
        n_non_finite=int((~finite).sum()),
        model=model,
    )
