"""The simulation store: one Zarr group, read through xarray, written a chunk at a time.

Schema (version 2): the data, and a per-sample ledger saying how each row came about::

    theta    (sample, param)   float64   parameters
    x        (sample, output)  float64   simulator outputs (NaN unless status is OK)
    seed     (sample,)         uint64    the per-sample simulation seed
    status   (sample,)         int8      Status code; PENDING until the row is written
    attempts (sample,)         uint8     simulator runs the row took (0 while pending)
    error    (sample,)         <U200     why a row is not OK, truncated; empty for OK rows
    elapsed  (sample,)         float64   seconds spent simulating the row
    host     (sample,)         <U64      the machine that simulated it
    job_id   (sample,)         int64     its SLURM job id, -1 outside SLURM

Coordinates ``param`` and ``output`` carry the names; attributes carry the simulator, its
settings, the prior, the campaign seed and settings, the chunk size and the schema version, and
nothing that depends on when or where the campaign ran. Every variable is chunked along
``sample`` with the campaign's chunk size, so each task owns whole chunks and no two writers share
one. Data and ledger are written before status: a row whose status is not PENDING is complete.
Only :data:`TIMING_VARIABLES` record when and where a row ran; everything else in a store is the
same bytes whatever the cluster, the schedule or the interruptions.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr

from simulators.base import Simulator
from simulators.errors import StoreError

__all__ = [
    "SCHEMA_VERSION",
    "ERROR_CHARS",
    "HOST_CHARS",
    "TIMING_VARIABLES",
    "Status",
    "create_store",
    "open_store",
    "write_rows",
    "pending_chunks",
    "load_pairs",
    "store_identity",
]

SCHEMA_VERSION = 2
ERROR_CHARS = 200
HOST_CHARS = 64
TIMING_VARIABLES = ("elapsed", "host", "job_id")
# uncompressed: random floats barely compress, and raw chunks are written at np.save's speed;
# the strings (mostly padding) keep zarr's default zstd
_RAW = ("theta", "x", "seed", "status", "attempts", "elapsed", "job_id")


class Status(IntEnum):
    """Per-sample status codes stored in ``status``."""

    PENDING = 0
    OK = 1
    INVALID = 2  # NaN, inf or a wrong shape
    FAILED = 3  # raised on every attempt
    TIMEOUT = 4  # stopped at the campaign's timeout


@contextmanager
def _quiet_strings() -> Iterator[None]:
    # Fixed-width strings round-trip exactly in zarr 3.1 but have no Zarr v3 spec yet; the
    # schema pins them, so the "unstable data type" warning would only be noise for users.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
        yield


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

    def lazy(shape: tuple[int, ...], dtype: Any, fill: Any = 0) -> Any:
        return da.full(shape, fill, dtype=dtype, chunks=(chunk,) + shape[1:])

    template = xr.Dataset(
        {
            "theta": (("sample", "param"), lazy((n, n_params), np.float64)),
            "x": (("sample", "output"), lazy((n, n_outputs), np.float64)),
            "seed": ("sample", lazy((n,), np.uint64)),
            "status": ("sample", lazy((n,), np.int8, Status.PENDING)),
            "attempts": ("sample", lazy((n,), np.uint8)),
            "error": ("sample", lazy((n,), f"<U{ERROR_CHARS}", "")),
            "elapsed": ("sample", lazy((n,), np.float64)),
            "host": ("sample", lazy((n,), f"<U{HOST_CHARS}", "")),
            "job_id": ("sample", lazy((n,), np.int64, -1)),
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
    # fill values make never-written chunks read as PENDING / empty, not as arbitrary zeros
    for name, fill in (("status", Status.PENDING), ("error", ""), ("host", ""), ("job_id", -1)):
        encoding[name]["fill_value"] = fill
    for name in _RAW:
        encoding[name]["compressors"] = None
    with _quiet_strings():
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
        If ``path`` is missing or not a simulation store of this schema version.
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no simulation store at {path}; run the campaign (`emustudy run`) first")
    try:
        with _quiet_strings():
            ds = xr.open_zarr(path, consolidated=False)
    except Exception as err:
        raise StoreError(f"{path} is not a readable Zarr store: {err}") from err
    found = ds.attrs.get("schema_version")
    if found == 1:
        raise StoreError(
            f"{path} is a schema-1 simulation store (no per-sample ledger); this emustudy reads "
            f"schema {SCHEMA_VERSION}. Its rows cannot be upgraded in place: move or delete it and "
            "run the campaign again (`emustudy run` recomputes it), or read it with emustudy 0.1"
        )
    if found != SCHEMA_VERSION or "status" not in ds:
        raise StoreError(
            f"{path} is not an emustudy simulation store of schema version {SCHEMA_VERSION} "
            f"(found schema_version={found!r}); point to a store a campaign wrote"
        )
    return ds


def write_rows(
    path: Path,
    start: int,
    *,
    theta: np.ndarray,
    x: np.ndarray,
    seed: np.ndarray,
    status: np.ndarray,
    attempts: np.ndarray | None = None,
    error: np.ndarray | None = None,
    elapsed: np.ndarray | None = None,
    host: str = "",
    job_id: int = -1,
) -> None:
    """Write whole chunks of rows starting at ``start``: data and ledger first, then status.

    Parameters
    ----------
    theta : (rows, n_params)
    x : (rows, n_outputs)
    seed, status : (rows,)
    attempts, error, elapsed : (rows,), optional
        Runs per row (default 1), error texts (truncated to :data:`ERROR_CHARS`; default empty)
        and seconds per row (default 0).
    host : str
        Where the rows ran (truncated to :data:`HOST_CHARS`).
    job_id : int
        The SLURM job id, or -1.
    """
    rows = len(theta)
    region = slice(start, start + rows)
    error = np.full(rows, "") if error is None else np.asarray(error, dtype=str)
    has_error = bool((error != "").any())  # on the short input strings: fast
    values = {
        "theta": np.asarray(theta, dtype=np.float64),
        "x": np.asarray(x, dtype=np.float64),
        "seed": np.asarray(seed, dtype=np.uint64),
        "attempts": np.ones(rows, np.uint8) if attempts is None else np.asarray(attempts, np.uint8),
        "error": error,
        "elapsed": np.zeros(rows) if elapsed is None else np.asarray(elapsed, np.float64),
        "host": np.full(rows, host[:HOST_CHARS], dtype=f"<U{HOST_CHARS}"),
        "job_id": np.full(rows, job_id, dtype=np.int64),
        "status": np.asarray(status, dtype=np.int8),  # last: it marks the rows complete
    }
    # Not through xarray: a region write re-reads and checks the whole dataset on every call,
    # which made chunk writes ~10x slower than np.save (benchmarks/store_write.py).
    path = Path(path)
    group = None
    for name, value in values.items():
        if name == "error":
            if not has_error and _unwritten_chunk(path, name, start, rows):
                continue  # all rows OK: the chunk already reads as empty (the fill value)
            value = value.astype(f"<U{ERROR_CHARS}")  # truncates longer texts
        if _write_raw_chunk(path, name, start, value):
            continue
        if group is None:
            group = zarr.open_group(path, mode="r+", use_consolidated=False)
        with _quiet_strings():
            group[name][region] = value


def _unwritten_chunk(path: Path, name: str, start: int, rows: int) -> bool:
    """Whether rows ``start:start + rows`` are exactly one chunk of ``name`` with no file yet."""
    meta = json.loads((path / name / "zarr.json").read_text())
    chunk, n = meta["chunk_grid"]["configuration"]["chunk_shape"][0], meta["shape"][0]
    if (
        start % chunk
        or rows != min(chunk, n - start)
        or meta.get("chunk_key_encoding") != _DEFAULT_KEYS
    ):
        return False
    return not (path / name / "c" / str(start // chunk)).exists()


# zarr leaves the endianness out for one-byte types
_BYTES_CODECS = ({"name": "bytes", "configuration": {"endian": "little"}}, {"name": "bytes"})
_DEFAULT_KEYS = {"name": "default", "configuration": {"separator": "/"}}


def _write_raw_chunk(path: Path, name: str, start: int, value: np.ndarray) -> bool:
    """Write one whole chunk of an array as its file, the bytes zarr itself would write.

    With the little-endian ``bytes`` codec and at most zstd after it, a Zarr v3 chunk file is the
    chunk's C-order bytes (padded with the fill value at the array's edge), zstd-compressed by
    the very numcodecs codec zarr uses. Writing it straight from the array (to a temporary file
    renamed into place, as zarr does) skips zarr's per-call machinery and its copy per codec: the
    difference between ~10 % and ~50 % of np.save's speed. Returns False, writing nothing, when
    the array is laid out otherwise or the rows are not one whole chunk.
    """
    meta = json.loads((path / name / "zarr.json").read_text())
    chunk = meta["chunk_grid"]["configuration"]["chunk_shape"]
    codecs, rows, n = meta["codecs"], len(value), meta["shape"][0]
    zstd = codecs[1:] == [] or (len(codecs) == 2 and codecs[1]["name"] == "zstd")
    if (
        not zstd
        or codecs[0] not in _BYTES_CODECS
        or meta.get("chunk_key_encoding") != _DEFAULT_KEYS
        or list(value.shape[1:]) != chunk[1:]
        or start % chunk[0]
        or rows != min(chunk[0], n - start)
    ):
        return False
    data = np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
    if rows < chunk[0]:
        fill = meta["fill_value"]
        if isinstance(fill, str) and data.dtype.kind == "f":
            fill = float(fill)  # "NaN", "Infinity"
        padded = np.full(chunk, fill, dtype=data.dtype)
        padded[:rows] = data
        data = padded
    payload = memoryview(data).cast("B")
    if len(codecs) == 2:
        from numcodecs import Zstd

        payload = Zstd.from_config(codecs[1]["configuration"]).encode(payload)
    file = path.joinpath(name, "c", str(start // chunk[0]), *["0"] * (len(chunk) - 1))
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(f"{file.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(partial, "wb") as stream:
            stream.write(payload)
        os.replace(partial, file)
    finally:
        partial.unlink(missing_ok=True)
    return True


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
