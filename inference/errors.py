"""Errors of the inference layer, as part of the shared :mod:`simulators.errors` hierarchy.

The shared hierarchy has no class for the files this layer writes (trained posteriors and score
stores) nor for a reference posterior that failed its own checks, so those classes live here and
derive from :class:`EmustudyError`; callers catch them either by name or as an
:class:`EmustudyError`.
"""

from __future__ import annotations

from typing import Any

from simulators.errors import EmustudyError

__all__ = ["ResultFileError", "ReferenceRefused"]


class ResultFileError(EmustudyError):
    """A trained-posterior file or a score store is missing, corrupt or of an unknown format."""


class ReferenceRefused(EmustudyError):
    """A reference posterior failed its own convergence checks and must not be scored against.

    Parameters
    ----------
    message : str
        What failed, by how much, and how to fix it.
    diagnostics : optional
        The failed run's diagnostics (e.g. :class:`inference.likelihood_reference.MCMCDiagnostics`).
    """

    def __init__(self, message: str, diagnostics: Any = None) -> None:
        super().__init__(message)
        self.diagnostics = diagnostics
