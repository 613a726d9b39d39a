"""Named cluster profiles: a commented YAML file, validated into the settings of its backend.

Each profile's ``kind`` picks a backend in :data:`cluster.backends.BACKENDS`, whose profile
model validates the rest of its keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cluster.backends import (
    AddressProfile,
    ClusterProfile,
    LocalProfile,
    SlurmProfile,
    backend_class,
    walltime_seconds,
)
from cluster.backends.base import loopback_dashboard
from simulators.errors import ConfigError

__all__ = [
    "DEFAULT_PROFILES",
    "AddressProfile",
    "ClusterProfile",
    "LocalProfile",
    "SlurmProfile",
    "load_profile",
    "loopback_dashboard",
    "walltime_seconds",
]

DEFAULT_PROFILES = Path(__file__).with_name("profiles.yaml")


def load_profile(
    name: str, profiles_file: Path | None = None, **overrides: object
) -> ClusterProfile:
    """Read profile ``name`` from a profiles YAML and apply ``overrides``.

    Returns
    -------
    ClusterProfile
        The profile model of its ``kind``, e.g. :class:`LocalProfile` for ``kind: local``.

    Raises
    ------
    ConfigError
        If the file or the profile is missing, its kind is unknown (the message lists the known
        kinds), or a setting is invalid.
    """
    path = Path(profiles_file) if profiles_file else DEFAULT_PROFILES
    try:
        profiles = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read cluster profiles {path}: {err}") from err
    if name not in profiles:
        raise ConfigError(
            f"unknown cluster profile {name!r} in {path}; known profiles: {', '.join(profiles)}"
        )
    if not isinstance(profiles[name] or {}, dict):
        raise ConfigError(
            f"cluster profile {name!r} in {path} is {profiles[name]!r}; a profile is a mapping "
            "of settings, e.g. `kind: local` and `n_workers: 2` on indented lines"
        )
    settings: dict[str, Any] = {**(profiles[name] or {}), **overrides}
    try:
        backend = backend_class(settings.get("kind"))
    except ConfigError as err:
        raise ConfigError(f"cluster profile {name!r} in {path}: {err}") from err
    try:
        return backend.profile_type.model_validate(settings)
    except ValidationError as err:
        raise ConfigError(f"cluster profile {name!r} in {path} is invalid:\n{err}") from err
