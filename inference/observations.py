"""Checks of the observations a user conditions or scores a posterior on.

An observation with NaN, of the wrong shape, or whose true parameters lie outside the prior's
support would otherwise surface far away (a NaN sample, an infinite NLTP); these checks refuse it
where it is given, naming the observation by its index and saying what to do.
"""

from __future__ import annotations

import numpy as np

from simulators.errors import ConfigError
from simulators.prior import Prior

__all__ = ["check_observation", "check_observations", "check_in_support"]

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
