"""Errors of the inference layer, as part of the shared :mod:`simulators.errors` hierarchy.

The shared hierarchy has no class for the files this layer writes (trained posteriors and score
stores), so the one such class lives here and derives from :class:`EmustudyError`; callers catch
it either by name or as an :class:`EmustudyError`.
"""

from __future__ import annotations

from simulators.errors import EmustudyError

__all__ = ["ResultFileError"]


class ResultFileError(EmustudyError):
    """A trained-posterior file or a score store is missing, corrupt or of an unknown format."""
