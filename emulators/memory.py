"""Keep a training process's memory near what it holds while it streams a large store.

Streaming allocates and frees arrays the size of a store chunk (megabytes) for every chunk read,
some of them in zarr's I/O threads. glibc raises its mmap threshold after the first such free
and then serves them from per-thread heaps, which keep the freed space: resident memory grew by
up to ~50 MB past the data held, and differently from run to run
(``benchmarks/emulator_memory.py``). Inside :func:`large_allocations_mapped`, allocations from a
threshold up are mmap'd, so each freed chunk goes back to the OS at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["large_allocations_mapped", "mapped_bytes"]

_M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h)
_GLIBC_MAX_THRESHOLD = 32 * 2**20  # where glibc's own dynamic threshold ends on 64-bit


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost",
        )
    ]  # fmt: skip


@functools.cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None:
            libc.mallopt, libc.mallinfo2  # noqa: B018 - glibc >= 2.33 has both
            libc.mallinfo2.restype = _MallInfo2
    except (OSError, AttributeError):  # not glibc (musl, macOS): leave malloc alone
        return None
    return libc


def mapped_bytes() -> int | None:
    """Bytes of this process's heap allocations served by mmap now (None without glibc)."""
    libc = _libc()
    return None if libc is None else int(libc.mallinfo2().hblkhd)


@contextmanager
def large_allocations_mapped(threshold: int) -> Iterator[bool]:
    """Serve allocations of at least ``threshold`` bytes with mmap inside the block.

    Yields whether it could (glibc only). On exit the threshold becomes the process's
    ``MALLOC_MMAP_THRESHOLD_`` if set (Dask workers set it), else 32 MiB, where glibc's dynamic
    threshold would end.
    """
    libc = _libc()
    if libc is None or not libc.mallopt(_M_MMAP_THRESHOLD, int(threshold)):
        yield False
        return
    try:
        yield True
    finally:
        after = int(os.environ.get("MALLOC_MMAP_THRESHOLD_", _GLIBC_MAX_THRESHOLD))
        libc.mallopt(_M_MMAP_THRESHOLD, after)
