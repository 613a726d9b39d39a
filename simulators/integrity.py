"""Integrity checks of torch files that ``torch.load`` does not make."""

from __future__ import annotations

import os
import zipfile
from typing import IO

__all__ = ["verify_torch_file"]


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
