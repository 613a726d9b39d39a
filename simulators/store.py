"""The simulation store: one Zarr group, read and written through xarray.

Schema (version 1)::

    theta   (sample, param)   float64   parameters
    x       (sample, output)  float64   simulator outputs
    seed    (sample,)         uint64    the per-sample simulation seed
    elapsed (sample,)         float64   seconds spent simulating the sample's task, per sample
    status  (sample,)         int8      Status code; PENDING until the row is written

Coordinates ``param`` and ``output`` carry the names; attributes carry the simulator, its
settings, the prior, the campaign seed, the chunk size and the schema version. Every variable is
chunked along ``sample`` with the campaign's chunk size, so each task owns whole chunks and no two
writers share one. Data is written before status: a row whose status is not PENDING is complete.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from simulators.base import Simulator
from simulators.errors import StoreError

__all__ = [
    "SCHEMA_VERSION",
    "Status",
    "create_store",
    "open_store",
    "write_rows",
    "pending_chunks",
    "load_pairs",
    "store_identity",
]

SCHEMA_VERSION = 1


class Status(IntEnum):
    """Per-sample status codes stored in ``status``."""

    PENDING = 0
    OK = 1
    INVALID = 2
    FAILED = 3
    TIMEOUT = 4


def store_identity(
    simulator: Simulator,
    *,
    n_samples: int,
    chunk_size: int,
    campaign_seed: int,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The attributes that say which campaign a store belongs to."""
    return {
        "schema_version": SCHEMA_VERSION,
        "simulator": simulator.name,
        "simulator_settings": dict(simulator.settings),
        "prior": simulator.prior.model_dump(mode="json"),
        "n_samples": int(n_samples),
        "chunk_size": int(chunk_size),
        "campaign_seed": int(campaign_seed),
        **(extra or {}),
    }


def create_store(path: Path, identity: dict[str, Any], param_names, output_names) -> bool:
    """Create an empty store, or check that an existing one belongs to the same campaign.

    Parameters
    ----------
    path : Path
        The Zarr folder.
    identity : dict
        From :func:`store_identity`.
    param_names, output_names : sequence of str

    Returns
    -------
    created : bool
        False when a matching store already existed (the campaign resumes).

    Raises
    ------
    StoreError
        If ``path`` holds another campaign's store or something that is not a store.
    """
    path = Path(path)
    if path.exists():
        existing = open_store(path).attrs
        mismatched = {
            key: (existing.get(key), value)
            for key, value in identity.items()
            if _jsonable(existing.get(key)) != _jsonable(value)
        }
        if mismatched:
            details = "; ".join(
                f"{k}: stored {a!r}, requested {b!r}" for k, (a, b) in mismatched.items()
            )
            raise StoreError(
                f"{path} holds a different campaign ({details}). Nothing was written. "
                "Use another store path, or delete this store to recompute it."
            )
        return False
    import dask.array as da  # only creating a store needs dask (lazy, never-written templates)

    n, chunk = identity["n_samples"], identity["chunk_size"]
    n_params, n_outputs = len(param_names), len(output_names)

    def lazy(shape: tuple[int, ...], dtype: Any) -> Any:
        return da.zeros(shape, dtype=dtype, chunks=(chunk,) + shape[1:])

    template = xr.Dataset(
        {
            "theta": (("sample", "param"), lazy((n, n_params), np.float64)),
            "x": (("sample", "output"), lazy((n, n_outputs), np.float64)),
            "seed": ("sample", lazy((n,), np.uint64)),
            "elapsed": ("sample", lazy((n,), np.float64)),
            "status": ("sample", np.full(n, Status.PENDING, dtype=np.int8)),
        },
        coords={
            "sample": np.arange(n, dtype=np.int64),
            "param": np.array(list(param_names), dtype=object),
            "output": np.array(list(output_names), dtype=object),
        },
        attrs=identity,
    )
    template["status"].attrs = {
        "flag_values": [int(s) for s in Status],
        "flag_meanings": " ".join(s.name.lower() for s in Status),
    }
    encoding = {
        name: {"chunks": (chunk,) + template[name].shape[1:]} for name in template.data_vars
    }
    template.to_zarr(path, mode="w-", compute=False, encoding=encoding, consolidated=False)
    return True


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def open_store(path: Path) -> xr.Dataset:
    """Open a store lazily.

    Raises
    ------
    StoreError
        If ``path`` is missing or not a simulation store of a known schema version.
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no simulation store at {path}; run the campaign (`emustudy run`) first")
    try:
        ds = xr.open_zarr(path, consolidated=False)
    except Exception as err:
        raise StoreError(f"{path} is not a readable Zarr store: {err}") from err
    if ds.attrs.get("schema_version") != SCHEMA_VERSION or "status" not in ds:
        raise StoreError(
            f"{path} is not an emustudy simulation store of schema version {SCHEMA_VERSION} "
            f"(found schema_version={ds.attrs.get('schema_version')!r})"
        )
    return ds


def write_rows(
    path: Path,
    start: int,
    *,
    theta: np.ndarray,
    x: np.ndarray,
    seed: np.ndarray,
    elapsed: np.ndarray,
    status: np.ndarray,
) -> None:
    """Write whole chunks of rows starting at ``start``: data first, then status.

    Parameters
    ----------
    theta : (rows, n_params)
    x : (rows, n_outputs)
    seed, elapsed, status : (rows,)
    """
    region = {"sample": slice(start, start + len(theta))}
    data = xr.Dataset(
        {
            "theta": (("sample", "param"), np.asarray(theta, dtype=np.float64)),
            "x": (("sample", "output"), np.asarray(x, dtype=np.float64)),
            "seed": ("sample", np.asarray(seed, dtype=np.uint64)),
            "elapsed": ("sample", np.asarray(elapsed, dtype=np.float64)),
        }
    )
    data.to_zarr(path, region=region, consolidated=False)
    flags = xr.Dataset({"status": ("sample", np.asarray(status, dtype=np.int8))})
    flags.to_zarr(path, region=region, consolidated=False)


def pending_chunks(path: Path) -> list[tuple[int, int]]:
    """Chunks ``(start, stop)`` that still hold a PENDING row."""
    ds = open_store(path)
    status = ds["status"].values
    chunk, n = int(ds.attrs["chunk_size"]), status.shape[0]
    return [
        (start, min(start + chunk, n))
        for start in range(0, n, chunk)
        if (status[start : start + chunk] == Status.PENDING).any()
    ]


def load_pairs(
    path: Path, limit: int | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Load the valid ``(theta, x)`` pairs of a finished store into memory.

    Parameters
    ----------
    path : Path
    limit : int, optional
        Keep only the first ``limit`` valid rows.

    Returns
    -------
    theta : (n_valid, n_params) float64
    x : (n_valid, n_outputs) float64
    counts : dict
        Number of rows per status name.

    Raises
    ------
    StoreError
        If rows are still pending (the campaign has not finished).
    """
    ds = open_store(path)
    status = ds["status"].values
    counts = {s.name.lower(): int((status == s).sum()) for s in Status}
    if counts["pending"]:
        raise StoreError(
            f"{path} has {counts['pending']} pending rows: its campaign has not finished; "
            "run the campaign again to complete it"
        )
    keep = np.flatnonzero(status == Status.OK)
    if limit is not None:
        keep = keep[:limit]
    return ds["theta"].values[keep], ds["x"].values[keep], counts
