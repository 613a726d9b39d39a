"""Integrity checks that readers do not make on their own: torch files, finished stores."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import IO

__all__ = ["is_store", "store_damage", "verify_torch_file"]


def verify_torch_file(source: str | os.PathLike[str] | IO[bytes]) -> None:
    """Check every record of a torch file against the CRC-32 stored with it.

    ``torch.load`` does not: bytes altered inside a tensor would load as other numbers.

    Raises
    ------
    ValueError
        Saying which record is damaged, or that ``source`` is not a whole torch zip file.
    """
    try:
        with zipfile.ZipFile(source) as archive:
            damaged = archive.testzip()
    except Exception as err:  # zipfile raises several types for cut or foreign files
        raise ValueError(f"not a whole torch zip file ({type(err).__name__}: {err})") from err
    if damaged is not None:
        raise ValueError(f"its record {damaged!r} fails its CRC-32 check: the bytes were altered")


def is_store(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a simulation store folder (has a ``status`` array)."""
    return Path(path, "status", "zarr.json").is_file()


def _fingerprint(path: Path) -> tuple:
    """Name, size and modification time of every file of a store: stat calls only."""
    found = []
    for root, _, files in os.walk(path):
        for name in files:
            stat = os.stat(os.path.join(root, name))
            found.append((root, name, stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(found))


_damage_seen: dict[str, tuple[tuple, list[str]]] = {}


def store_damage(path: str | os.PathLike[str]) -> list[str]:
    """What is wrong with a store whose campaign finished, one line per damaged chunk file.

    Truncated, corrupt or missing chunk files (:func:`simulators.store.corrupt_chunks`: it
    reads every chunk file once and checks its CRC-32C, about the cost of reading the store),
    then chunks whose rows read as pending (a lost status chunk). The answer is kept in this
    process until a file of the store changes size or modification time, so repeated checks
    cost only stat calls.

    Returns
    -------
    problems : list of str
        Empty for a whole store.
    """
    from simulators.store import _layout, corrupt_chunks, pending_chunks

    path = Path(path)
    fingerprint = _fingerprint(path)
    seen = _damage_seen.get(str(path))
    if seen is not None and seen[0] == fingerprint:
        return list(seen[1])
    problems = [f"{file} {problem}" for file, problem in corrupt_chunks(path)]
    if not problems:
        chunk = _layout(path, "status")["chunk_grid"]["configuration"]["chunk_shape"][0]
        problems = [
            f"{path / 'status' / 'c' / str(start // chunk)} is missing or was never written: "
            f"rows {start}:{stop} read as pending"
            for start, stop in pending_chunks(path)
        ]
    _damage_seen[str(path)] = (fingerprint, problems)
    return list(problems)
