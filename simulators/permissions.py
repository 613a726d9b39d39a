"""What emustudy writes is never group- or world-writable, whatever the user's umask.

Stores, study folders, checkpoints and reports are written by many libraries (zarr, torch,
Lightning, matplotlib), each creating files with the process umask. Rather than chmod every file
after the fact, the writing processes run with group and world write masked out: the driver
while a study or campaign runs (:func:`safe_umask`, restored afterwards), and Dask workers as soon
as they write a store chunk (:func:`tighten_umask`, kept: a worker's threads share one umask, and
restoring it under a thread still writing would loosen that thread's files). A stricter umask
(e.g. 0o077) is kept as it is.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["NOT_WRITABLE_BY_OTHERS", "tighten_umask", "safe_umask"]

NOT_WRITABLE_BY_OTHERS = 0o022
"""Umask bits always set while emustudy writes: no group or world write permission."""


def tighten_umask() -> int:
    """Add group and world write to the process umask (never loosening it).

    Returns
    -------
    previous : int
        The umask before.
    """
    previous = os.umask(NOT_WRITABLE_BY_OTHERS)
    if previous | NOT_WRITABLE_BY_OTHERS != NOT_WRITABLE_BY_OTHERS:
        os.umask(previous | NOT_WRITABLE_BY_OTHERS)
    return previous


@contextmanager
def safe_umask() -> Iterator[None]:
    """Run the block with :func:`tighten_umask`, then restore the caller's umask.

    Processes started inside the block (a LocalCluster's workers) inherit the safe umask.
    """
    previous = tighten_umask()
    try:
        yield
    finally:
        os.umask(previous)
