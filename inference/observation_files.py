"""Observations and reference samples that a user brings as files.

:func:`read_observations` reads observed outputs, optionally with the true parameters that made
them, from a CSV file (a header of output names, optionally parameter names), an NPY file (a 2-D
array of outputs) or a NetCDF file or Zarr folder (an xarray dataset with variable ``x`` of dims
``(observation, output)`` and optionally ``theta`` of dims ``(observation, param)``).
:func:`read_reference_samples` reads reference posterior draws per observation (e.g. from a long
MCMC run, or published) from an NPY file of shape ``(observation, draw, param)`` or a NetCDF/Zarr
dataset with variable ``theta`` of those dims.

A bad file is refused where it is read, not where its values would surface (a NaN sample, an
infinite score): every error names the file, the row (observation) and the fix.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simulators.errors import ConfigError

__all__ = ["FORMATS", "ObservedData", "read_observations", "read_reference_samples"]

FORMATS = {".csv": "csv", ".npy": "npy", ".nc": "netcdf", ".nc4": "netcdf", ".zarr": "zarr"}
"""File suffixes read, and their formats."""


@dataclass(frozen=True)
class ObservedData:
    """Observations read from a file.

    Attributes
    ----------
    x : (n_obs, n_outputs) float64
        Finite observed outputs, columns in the simulator's output order.
    theta : (n_obs, n_params) float64 or None
        The true parameters, when the file has them.
    source : str
        The file read.
    """

    x: np.ndarray
    theta: np.ndarray | None
    source: str


def _format(path: Path) -> str:
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"{path}: unknown observation file format {path.suffix!r}; expected one of "
            f"{sorted(FORMATS)} (CSV with a header, NPY, NetCDF or a Zarr folder)"
        )
    if not path.exists():
        raise ConfigError(f"{path}: no such file; check the path in the config")
    return kind


def _check_finite(values: np.ndarray, path: Path, what: str, names: Sequence[str]) -> None:
    """Refuse NaN or infinite values, naming the first bad observation and its columns."""
    bad = ~np.isfinite(values)
    if not bad.any():
        return
    flat = bad.reshape(len(values), -1, bad.shape[-1]).any(axis=1)
    rows = np.flatnonzero(flat.any(axis=1))
    first = int(rows[0])
    columns = [names[int(c)] for c in np.flatnonzero(flat[first])]
    raise ConfigError(
        f"{path}: {what} of observation {first} (row {first}, counting from 0) has NaN or "
        f"infinite values in {columns}; {len(rows)} observation(s) have such values "
        f"(first: {rows[:10].tolist()}). Drop those rows or replace the values, then read again"
    )


def _csv_table(path: Path) -> tuple[list[str], list[list[str]]]:
    try:
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ConfigError(f"{path}: cannot read it as CSV ({err}); save it as UTF-8 CSV") from err
    rows = [row for row in rows if row]
    if len(rows) < 2:
        raise ConfigError(
            f"{path}: a CSV of observations needs a header of column names and at least one "
            f"row of values, got {len(rows)} line(s)"
        )
    return [name.strip() for name in rows[0]], rows[1:]


def _csv_columns(
    path: Path, header: list[str], output_names: Sequence[str], param_names: Sequence[str] | None
) -> bool:
    """Check the header; returns whether it holds the parameter columns."""
    params = list(param_names or [])
    missing = [name for name in output_names if name not in header]
    unknown = [name for name in header if name not in (*output_names, *params)]
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if missing or unknown or duplicated:
        raise ConfigError(
            f"{path}: wrong columns in the header (line 1): missing outputs {missing}, unknown "
            f"columns {unknown}, repeated {duplicated}. Expected one column per output "
            f"{list(output_names)}, optionally one per parameter {params}; rename or remove "
            "the columns"
        )
    present = [name for name in params if name in header]
    if present and len(present) != len(params):
        raise ConfigError(
            f"{path}: the header has parameter columns {present} but not "
            f"{[n for n in params if n not in header]}; give every parameter or none"
        )
    return bool(present)


def _read_csv(
    path: Path, output_names: Sequence[str], param_names: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray | None]:
    header, rows = _csv_table(path)
    has_theta = _csv_columns(path, header, output_names, param_names)
    values = np.empty((len(rows), len(header)))
    for index, row in enumerate(rows):
        if len(row) != len(header):
            raise ConfigError(
                f"{path}: row {index} (line {index + 2}) has {len(row)} values but the header "
                f"has {len(header)} columns; give every row one value per column"
            )
        try:
            values[index] = [float(cell) if cell.strip() else np.nan for cell in row]
        except ValueError as err:
            raise ConfigError(
                f"{path}: row {index} (line {index + 2}) holds a value that is not a number "
                f"({err}); write numbers only (an empty cell reads as missing)"
            ) from err
    x = values[:, [header.index(name) for name in output_names]]
    theta = values[:, [header.index(n) for n in param_names]] if has_theta else None
    return x, theta


def _open_dataset(path: Path, kind: str):
    import xarray as xr

    try:
        if kind == "zarr":
            return xr.open_zarr(path, consolidated=None).load()
        return xr.open_dataset(path).load()
    except Exception as err:  # noqa: BLE001 - any reader failure means an unreadable file
        raise ConfigError(
            f"{path}: cannot open it as a {kind} dataset ({type(err).__name__}: {err}); "
            "write it with xarray (`Dataset.to_netcdf` / `Dataset.to_zarr`)"
        ) from err


def _variable(
    dataset, path: Path, name: str, dims: tuple[str, ...], names: Sequence[str]
) -> np.ndarray:
    """Variable ``name`` with ``dims``, its last dim in the order of ``names`` (by coordinate)."""
    if name not in dataset:
        raise ConfigError(
            f"{path}: no variable {name!r} (found {sorted(dataset.data_vars)}); store it with "
            f"dims {dims}"
        )
    variable = dataset[name]
    if variable.dims != dims:
        raise ConfigError(
            f"{path}: variable {name!r} has dims {variable.dims}, expected {dims}; "
            f"transpose or rename its dims (`da.transpose{dims}`)"
        )
    last = dims[-1]
    if last in variable.coords:
        stored = [str(v) for v in variable[last].values]
        missing = [n for n in names if n not in stored]
        if missing or len(stored) != len(names):
            raise ConfigError(
                f"{path}: variable {name!r} has {last} coordinate {stored}, expected "
                f"{list(names)} (missing {missing}); label the {last} dim with these names"
            )
        variable = variable.sel({last: list(names)})
    elif variable.shape[-1] != len(names):
        raise ConfigError(
            f"{path}: variable {name!r} has {variable.shape[-1]} entries along {last!r}, expected "
            f"{len(names)} ({list(names)}); store the right dimension"
        )
    return np.asarray(variable.values, dtype=np.float64)


def _read_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
        return np.asarray(array, dtype=np.float64)
    except (OSError, ValueError, TypeError) as err:
        raise ConfigError(
            f"{path}: cannot read it as a numeric NPY array ({err}); save it with "
            "`np.save(path, array.astype(float))`"
        ) from err


def read_observations(
    path: str | os.PathLike[str],
    output_names: Sequence[str],
    param_names: Sequence[str] | None = None,
) -> ObservedData:
    """Observed outputs, and the true parameters where the file has them.

    Parameters
    ----------
    path : path-like
        A ``.csv``, ``.npy``, ``.nc``/``.nc4`` file or a ``.zarr`` folder.
    output_names : sequence of str
        The simulator's outputs, in its order.
    param_names : sequence of str, optional
        The prior's parameters; CSV columns or a ``theta`` variable of these are read.

    Returns
    -------
    ObservedData
        ``x`` ``(n_obs, len(output_names))``; ``theta`` ``(n_obs, len(param_names))`` or None.

    Raises
    ------
    ConfigError
        For an unreadable file, wrong or missing columns, a wrong dimension, or NaN or
        infinite values (naming the file, the row and the fix).
    """
    path = Path(path)
    kind = _format(path)
    theta = None
    if kind == "csv":
        x, theta = _read_csv(path, output_names, param_names)
    elif kind == "npy":
        x = _read_npy(path)
        if x.ndim != 2 or x.shape[1] != len(output_names):
            raise ConfigError(
                f"{path}: an NPY file of observations must be 2-D, (n_obs, {len(output_names)}) "
                f"with columns {list(output_names)}, got shape {x.shape}; reshape it "
                f"(one observation: `x.reshape(1, {len(output_names)})`)"
            )
    else:
        dataset = _open_dataset(path, kind)
        x = _variable(dataset, path, "x", ("observation", "output"), output_names)
        if param_names is not None and "theta" in dataset:
            theta = _variable(dataset, path, "theta", ("observation", "param"), param_names)
    if len(x) == 0:
        raise ConfigError(f"{path}: holds no observations; give at least one row")
    _check_finite(x, path, "outputs", list(output_names))
    if theta is not None:
        _check_finite(theta, path, "parameters", list(param_names or []))
    return ObservedData(x=x, theta=theta, source=str(path))


def read_reference_samples(path: str | os.PathLike[str], param_names: Sequence[str]) -> np.ndarray:
    """Reference posterior draws per observation that a user brings.

    Parameters
    ----------
    path : path-like
        An ``.npy`` file of shape ``(n_obs, n_draws, n_params)``, or a ``.nc``/``.nc4`` file or
        ``.zarr`` folder with variable ``theta`` of dims ``(observation, draw, param)``.
    param_names : sequence of str

    Returns
    -------
    draws : (n_obs, n_draws, len(param_names)) float64

    Raises
    ------
    ConfigError
        For an unreadable file, a wrong dimension, or NaN or infinite draws (naming the
        observation).
    """
    path = Path(path)
    kind = _format(path)
    p = len(param_names)
    if kind == "csv":
        raise ConfigError(
            f"{path}: reference samples are 3-D (observation, draw, param); save them as NPY "
            "(`np.save`), NetCDF or Zarr, not CSV"
        )
    if kind == "npy":
        draws = _read_npy(path)
        if draws.ndim != 3 or draws.shape[2] != p or 0 in draws.shape:
            raise ConfigError(
                f"{path}: reference samples must have shape (n_obs, n_draws, {p}) with "
                f"parameters {list(param_names)}, got {draws.shape}; one observation's draws "
                f"are `draws.reshape(1, -1, {p})`"
            )
    else:
        dataset = _open_dataset(path, kind)
        draws = _variable(dataset, path, "theta", ("observation", "draw", "param"), param_names)
    _check_finite(draws, path, "reference draws", list(param_names))
    return draws
