"""The exception hierarchy shared by every layer of emustudy.

Every message says what was received, what was expected and how to fix it.
"""

__all__ = ["EmustudyError", "ConfigError", "StoreError", "StaleOutputError"]


class EmustudyError(Exception):
    """Base class of every error emustudy raises on purpose."""


class ConfigError(EmustudyError, ValueError):
    """A setting, a config file or an argument is invalid."""


class StoreError(EmustudyError):
    """A simulation store is missing, corrupt, or belongs to another campaign."""


class StaleOutputError(EmustudyError):
    """An output on disk was made from a different config than the one running now."""
