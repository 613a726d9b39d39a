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

Every chunk file ends with a CRC-32C checksum (the Zarr v3 ``crc32c`` codec). Stores opened with
:func:`open_store` or :func:`open_group` check each chunk they read and raise a
:class:`StoreError` naming the file when it is truncated or corrupt, instead of handing out
garbage; :func:`discard_corrupt_chunks` finds such files so that a campaign recomputes them.
"""

from __future__ import annotations

import errno
import functools
import json
import os
import shutil
import struct
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Any

import crc32c
import numpy as np
import xarray as xr
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec
from zarr.storage import LocalStore

from simulators.base import Simulator
from simulators.errors import StoreError
from simulators.permissions import safe_umask, tighten_umask

__all__ = [
    "SCHEMA_VERSION",
    "ERROR_CHARS",
    "HOST_CHARS",
    "TIMING_VARIABLES",
    "Status",
    "create_store",
    "open_store",
    "open_group",
    "write_rows",
    "pending_chunks",
    "load_pairs",
    "store_identity",
    "corrupt_chunks",
    "discard_corrupt_chunks",
    "disk_full",
]

SCHEMA_VERSION = 2
ERROR_CHARS = 200
HOST_CHARS = 64
TIMING_VARIABLES = ("elapsed", "host", "job_id")
# uncompressed: random floats barely compress, and raw chunks are written at np.save's speed;
# the strings (mostly padding) keep zarr's default zstd
_RAW = ("theta", "x", "seed", "status", "attempts", "elapsed", "job_id")
_VARIABLES = _RAW + ("error", "host")
_REPAIR = (
    "Rerun the campaign with the same arguments (`emustudy run`): it simulates the rows of "
    "damaged chunk files again, and only those; or restore the store from a copy"
)


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
            fix = "Use another store path, or delete this store to recompute it."
            if "chunk_size" in mismatched:
                stored = mismatched["chunk_size"][0]
                fix = (
                    "A store's chunk size is fixed when it is created: each task writes one "
                    f"whole {stored}-row chunk file, so that no two tasks share one. Resume with "
                    f"chunk_size={stored}, or use another store path."
                )
            raise StoreError(
                f"{path} holds a different campaign ({details}). Nothing was written. {fix}"
            )
        _check_chunking(path, int(identity["chunk_size"]))
        return False
    import dask.array as da  # only creating a store needs dask (lazy, never-written templates)

    # Made for one chunk's rows, then grown to n: the cost and memory of creating a store do
    # not grow with its size (a template of n rows cost ~2 s and ~60 MB per million rows)
    size, chunk = identity["n_samples"], identity["chunk_size"]
    n = min(size, chunk)
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
    # every chunk file ends with its CRC-32C, so a damaged one is an error, never data
    zstd = (ZstdCodec(level=0, checksum=False), Crc32cCodec())
    encoding: dict[str, dict[str, Any]] = {name: {"compressors": zstd} for name in template.coords}
    for name in template.data_vars:
        encoding[name] = {
            "chunks": (chunk,) + template[name].shape[1:],
            "compressors": (Crc32cCodec(),) if name in _RAW else zstd,
        }
    # fill values make never-written chunks read as PENDING / empty, not as arbitrary zeros
    for name, fill in (("status", Status.PENDING), ("error", ""), ("host", ""), ("job_id", -1)):
        encoding[name]["fill_value"] = fill
    encoding["sample"]["chunks"] = (min(size, _INDEX_CHUNK),)
    try:
        with _quiet_strings(), safe_umask():
            template.to_zarr(path, mode="w-", compute=False, encoding=encoding, consolidated=False)
            _grow(path, size)
    except OSError as err:
        shutil.rmtree(path, ignore_errors=True)  # holds no rows yet; a half-made one would not open
        why = "the disk is full" if disk_full(err) else f"{err!r}"
        raise StoreError(
            f"could not create the store {path}: {why}. Nothing was kept; free space (or choose "
            "a path on a larger disk) and run the campaign again"
        ) from err
    return True


_INDEX_CHUNK = 1 << 20  # rows per chunk file of the ``sample`` coordinate


def _grow(path: Path, size: int) -> None:
    """Give every array along ``sample`` ``size`` rows, and ``sample`` its values, in pieces."""
    group = zarr.open_group(path, mode="r+", use_consolidated=False)
    if group["sample"].shape[0] == size:
        return
    for name in _VARIABLES:
        array = group[name]
        array.resize((size, *array.shape[1:]))
    index = group["sample"]
    index.resize((size,))
    for start in range(0, size, _INDEX_CHUNK):
        stop = min(start + _INDEX_CHUNK, size)
        index[start:stop] = np.arange(start, stop, dtype=np.int64)


def disk_full(err: BaseException) -> bool:
    """Whether ``err``, or an exception it was raised from, says the disk or quota is full."""
    seen: set[int] = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        err = err.__cause__ or err.__context__
    return False


def _check_chunking(path: Path, chunk_size: int) -> None:
    """Refuse a store whose arrays are not chunked by the campaign's ``chunk_size`` rows."""
    for name in _VARIABLES:
        rows = _layout(path, name)["chunk_grid"]["configuration"]["chunk_shape"][0]
        if rows != chunk_size:
            raise StoreError(
                f"{path / name} is chunked by {rows} rows, but the campaign of {path} writes "
                f"chunk_size={chunk_size} rows per task: two tasks would write the same chunk "
                "file and lose each other's rows. Nothing was written. The store was rechunked "
                f"after its campaign created it; rechunk its arrays back to {chunk_size} rows, "
                "or run the campaign into a new store path."
            )


def _layout(path: Path, name: str) -> dict[str, Any]:
    """The Zarr v3 metadata of array ``name`` of the store at ``path``."""
    file = Path(path) / name / "zarr.json"
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise StoreError(
            f"{file} is missing or unreadable ({err}); {path} is damaged. Restore it from a copy, "
            "or delete it and run the campaign again"
        ) from err


def _crc32c(buffer: Any) -> int:
    # The crc32c package uses the CPU's CRC instruction: ~25 GB/s here, against google_crc32c's
    # ~5.5 GB/s (what zarr's codec uses; the values are the same), a quarter of a chunk write.
    return crc32c.crc32c(memoryview(np.ascontiguousarray(buffer)).cast("B"))


def _chunk_problem(meta: dict[str, Any], data: np.ndarray) -> str | None:
    """What is wrong with the bytes ``data`` (uint8) of one chunk file, or None.

    A chunk ending with the ``crc32c`` codec must match its checksum; without one (stores written
    before checksums), a raw chunk must at least have its exact size.
    """
    codecs = meta["codecs"]
    if codecs[-1]["name"] == "crc32c":
        if len(data) < 4:
            return f"is truncated: {len(data)} bytes, too few for its checksum"
        stored = int.from_bytes(data[-4:].tobytes(), "little")
        if _crc32c(data[:-4]) != stored:
            return f"is corrupt or truncated: its CRC-32C does not match its {len(data)} bytes"
        return None
    if len(codecs) == 1 and isinstance(meta["data_type"], str):
        shape = meta["chunk_grid"]["configuration"]["chunk_shape"]
        expected = int(np.prod(shape)) * np.dtype(meta["data_type"]).itemsize
        if len(data) != expected:
            return f"is truncated or corrupt: {len(data)} bytes, expected {expected}"
    return None


class _CheckedStore(LocalStore):
    """A local Zarr store that checks each chunk file it reads (see :func:`_chunk_problem`)."""

    def __init__(self, root: Path | str, *, read_only: bool = False) -> None:
        super().__init__(root, read_only=read_only)
        self._layouts: dict[str, dict[str, Any]] = {}

    def get_sync(self, key: str, *, prototype=None, byte_range=None):
        buffer = super().get_sync(key, prototype=prototype, byte_range=byte_range)
        return self._checked(key, buffer, byte_range)

    async def get(self, key: str, prototype=None, byte_range=None):
        buffer = await super().get(key, prototype, byte_range)
        return self._checked(key, buffer, byte_range)

    def _checked(self, key: str, buffer: Any, byte_range: Any) -> Any:
        name, separator, index = key.partition("/c/")
        if not separator or "/" in name or byte_range is not None:
            return buffer
        if buffer is None:
            # a chunk without its file reads as the fill value: right for rows still pending,
            # garbage (NaN, 0) for rows whose status chunk says they are done
            done = Path(self.root, "status", "c", index.split("/")[0])
            if name not in ("status", "error") and name in _VARIABLES and done.is_file():
                raise StoreError(
                    f"the chunk file {self.root / key} is missing, but its rows are done "
                    f"(their status chunk {done} exists). {_REPAIR}."
                )
            return buffer
        if name not in self._layouts:
            self._layouts[name] = _layout(self.root, name)
        problem = _chunk_problem(self._layouts[name], buffer.as_numpy_array())
        if problem:
            raise StoreError(f"the chunk file {self.root / key} {problem}. {_REPAIR}.")
        return buffer


def open_group(path: Path, mode: str = "r") -> zarr.Group:
    """The store as a Zarr group whose reads check every chunk file (see :func:`open_store`)."""
    store = _CheckedStore(Path(path), read_only=mode == "r")
    return zarr.open_group(store, mode=mode, use_consolidated=False)


def corrupt_chunks(path: Path) -> list[tuple[Path, str]]:
    """Chunk files of a store that are truncated, corrupt, or missing for rows marked done.

    Reads every chunk file once (the cost of reading the store).

    Returns
    -------
    problems : list of (file, what is wrong with it)
    """
    path = Path(path)
    done_dir = path / "status" / "c"
    done = {p.name for p in done_dir.iterdir() if p.is_file()} if done_dir.is_dir() else set()
    problems = []
    for name in _VARIABLES:
        meta, folder = _layout(path, name), path / name / "c"
        files = sorted(folder.rglob("*")) if folder.is_dir() else []
        files = [p for p in files if p.is_file() and not p.name.endswith(".partial")]
        for file in files:
            problem = _chunk_problem(meta, np.fromfile(file, dtype=np.uint8))
            if problem:
                problems.append((file, problem))
        if name != "error":  # an error chunk is not written when all its rows are OK
            present = {file.relative_to(folder).parts[0] for file in files}
            extra = ["0"] * (len(meta["shape"]) - 1)
            for index in sorted(done - present, key=int):
                missing = folder.joinpath(index, *extra)
                problems.append((missing, "is missing, but its rows are done"))
    return problems


def discard_corrupt_chunks(path: Path) -> list[str]:
    """Mark the rows of damaged chunk files pending again and delete those files.

    Each damaged chunk's status file goes first, so the rows read as PENDING from then on and an
    interrupted call leaves a consistent store; a campaign then simulates them again (the same
    bytes, the seeds being per sample).

    Returns
    -------
    problems : list of str
        One line per damaged file, naming it.
    """
    path = Path(path)
    problems = corrupt_chunks(path)
    for file, _ in problems:
        (path / "status" / "c" / file.relative_to(path).parts[2]).unlink(missing_ok=True)
    for file, _ in problems:
        file.unlink(missing_ok=True)
    return [f"{file} {problem}" for file, problem in problems]


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def open_store(path: Path) -> xr.Dataset:
    """Open a store lazily; reading a truncated or corrupt chunk file raises a StoreError.

    Raises
    ------
    StoreError
        If ``path`` is missing or not a simulation store of this schema version, and on reading
        a damaged chunk file (naming it).
    """
    path = Path(path)
    if not path.exists():
        raise StoreError(f"no simulation store at {path}; run the campaign (`emustudy run`) first")
    try:
        with _quiet_strings():
            # the ``sample`` coordinate is 0..n-1, and loading it as an index would cost 8
            # bytes per row: it is left out (positions are the sample indices)
            ds = xr.open_zarr(
                _CheckedStore(path, read_only=True),
                consolidated=False,
                drop_variables=("sample",),
                # lazy numpy-backed arrays, not dask: a read inside a Dask task must never
                # submit to the cluster it runs on (with every worker thread busy, it deadlocks)
                chunks=None,
            )
    except StoreError:
        raise
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
    tighten_umask()  # on a worker: its chunk files must not be group- or world-writable
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
        "host": _host_column(host[:HOST_CHARS], rows),
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
        reuse = (host[:HOST_CHARS], rows) if name == "host" else None
        if _write_raw_chunk(path, name, start, value, reuse=reuse):
            continue
        if group is None:
            group = zarr.open_group(path, mode="r+", use_consolidated=False)
        # every chunk of written rows gets its file, even one equal to the fill value (job_id
        # -1): a missing file of a done row then always means damage
        with _quiet_strings(), zarr.config.set({"array.write_empty_chunks": True}):
            group[name][region] = value


@functools.lru_cache(maxsize=256)
def _cached_metadata(file: str, mtime_ns: int, size: int) -> dict[str, Any]:
    return json.loads(Path(file).read_text())


def _metadata(path: Path, name: str) -> dict[str, Any]:
    """``name``'s zarr.json, parsed once per version of the file (a chunk write reads it for
    every array). The result is shared: do not modify it."""
    file = path / name / "zarr.json"
    stat = file.stat()
    return _cached_metadata(str(file), stat.st_mtime_ns, stat.st_size)


def _unwritten_chunk(path: Path, name: str, start: int, rows: int) -> bool:
    """Whether rows ``start:start + rows`` are exactly one chunk of ``name`` with no file yet."""
    meta = _metadata(path, name)
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


# Chunk files are written in 256 KiB pieces: single write() calls of several MB ran up to ~8x
# slower on this machine's virtual disk when the page cache was busy.
_WRITE_PIECE = 1 << 18


@functools.lru_cache(maxsize=4)
def _host_column(host: str, rows: int) -> np.ndarray:
    column = np.full(rows, host, dtype=f"<U{HOST_CHARS}")
    column.flags.writeable = False
    return column


# A worker writes the same host column chunk after chunk: filling and compressing it anew was
# ~15 % of a chunk write (benchmarks/store_write.py). Keyed by what determines its bytes.
_constant_chunks: dict[tuple, bytes] = {}


def _write_raw_chunk(
    path: Path, name: str, start: int, value: np.ndarray, reuse: tuple | None = None
) -> bool:
    """Write one whole chunk of an array as its file, the bytes zarr itself would write.

    With the little-endian ``bytes`` codec, then at most zstd and a ``crc32c``, a Zarr v3 chunk
    file is the chunk's C-order bytes (padded with the fill value at the array's edge),
    zstd-compressed by the very numcodecs codec zarr uses, then their little-endian CRC-32C.
    Writing it straight from the array (to a temporary file renamed into place, as zarr does)
    skips zarr's per-call machinery and its copy per codec: the difference between ~10 % and
    ~50 % of np.save's speed. ``reuse`` names what alone decides the chunk's bytes (for the host
    column: the host and the rows); its compressed bytes are then computed once. Returns False,
    writing nothing, when the array is laid out otherwise or the rows are not one whole chunk.
    """
    meta = _metadata(path, name)
    chunk = meta["chunk_grid"]["configuration"]["chunk_shape"]
    codecs, rows, n = meta["codecs"], len(value), meta["shape"][0]
    checksum = codecs[-1]["name"] == "crc32c"
    compressors = codecs[1 : len(codecs) - checksum]
    if (
        [c["name"] for c in compressors] not in ([], ["zstd"])
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
    if compressors:
        configuration = compressors[0]["configuration"]
        key = None
        if reuse is not None:
            key = (
                json.dumps(configuration, sort_keys=True),
                name,
                reuse,
                data.dtype.str,
                data.shape,
            )
        encoded = _constant_chunks.get(key) if key is not None else None
        if encoded is None:
            from numcodecs import Zstd

            encoded = Zstd.from_config(configuration).encode(payload)
            if key is not None:
                if len(_constant_chunks) >= 16:
                    _constant_chunks.clear()
                _constant_chunks[key] = encoded
        payload = encoded
    file = path.joinpath(name, "c", str(start // chunk[0]), *["0"] * (len(chunk) - 1))
    if not file.parent.is_dir():
        file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(f"{file.name}.{uuid.uuid4().hex}.partial")
    try:
        with open(partial, "wb", buffering=0) as stream:
            view = memoryview(payload).cast("B")
            for lo in range(0, len(view), _WRITE_PIECE):
                stream.write(view[lo : lo + _WRITE_PIECE])
            if checksum:
                stream.write(struct.pack("<I", _crc32c(payload)))
        os.replace(partial, file)
    finally:
        partial.unlink(missing_ok=True)
    return True


def pending_chunks(path: Path) -> list[tuple[int, int]]:
    """Chunks ``(start, stop)`` that still hold a PENDING row.

    A chunk without a status file is pending whole; the others are read one at a time, their
    checksums checked, so memory does not grow with the store.

    Raises
    ------
    StoreError
        If ``path`` is not a store, or a status chunk file is damaged (naming it).
    """
    path = Path(path)
    open_store(path)  # a store of this schema, or a StoreError saying what it is
    meta = _layout(path, "status")
    n, chunk = meta["shape"][0], meta["chunk_grid"]["configuration"]["chunk_shape"][0]
    folder = path / "status" / "c"
    present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
    raw = [c["name"] for c in meta["codecs"]] == ["bytes", "crc32c"]
    raw = raw and meta.get("chunk_key_encoding") == _DEFAULT_KEYS
    group = None
    todo = []
    for start in range(0, n, chunk):
        stop, index = min(start + chunk, n), str(start // chunk)
        if index not in present:
            todo.append((start, stop))
            continue
        if raw:  # the file is the chunk's bytes and their CRC-32C
            data = np.fromfile(folder / index, dtype=np.uint8)
            problem = _chunk_problem(meta, data)
            if problem:
                raise StoreError(f"the chunk file {folder / index} {problem}. {_REPAIR}.")
            status = data[:-4].view(np.int8)[: stop - start]
        else:
            group = group or open_group(path)
            status = group["status"][start:stop]
        if (status == Status.PENDING).any():
            todo.append((start, stop))
    return todo


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
        If rows are still pending (the campaign has not finished), a chunk file is damaged, or
        a row marked OK holds NaN or inf (a damaged or missing chunk file, named).
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
    theta, x = ds["theta"].values[keep], ds["x"].values[keep]
    broken = ~(np.isfinite(theta).all(axis=1) & np.isfinite(x).all(axis=1))
    if broken.any():
        row = int(keep[np.argmax(broken)])
        index = row // int(ds.attrs["chunk_size"])
        files = " or ".join(str(path / name / "c" / str(index) / "0") for name in ("theta", "x"))
        raise StoreError(
            f"{path}: {int(broken.sum())} rows marked OK hold NaN or inf, the first is row {row}: "
            f"the chunk file {files} is damaged or missing. {_REPAIR}."
        )
    return theta, x, counts
