"""Named cluster profiles: a commented YAML file, validated into typed settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from simulators.errors import ConfigError

__all__ = ["DEFAULT_PROFILES", "LocalProfile", "SlurmProfile", "ClusterProfile", "load_profile"]

DEFAULT_PROFILES = Path(__file__).with_name("profiles.yaml")


class LocalProfile(BaseModel):
    """A ``distributed.LocalCluster`` on this machine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["local"] = "local"
    n_workers: int = Field(2, gt=0)
    threads_per_worker: int = Field(1, gt=0)
    memory_limit: str = "auto"
    host: str = "127.0.0.1"
    dashboard_address: str = "127.0.0.1:8787"


class SlurmProfile(BaseModel):
    """A ``dask_jobqueue.SLURMCluster``: one Dask worker job per SLURM job."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["slurm"] = "slurm"
    jobs: int = Field(1, gt=0)
    cores: int = Field(1, gt=0)
    processes: int = Field(1, gt=0)
    memory: str = "2GB"
    queue: str | None = None
    account: str | None = None
    walltime: str = "00:30:00"
    interface: str | None = "lo"
    scheduler_host: str | None = "127.0.0.1"
    dashboard_address: str = "127.0.0.1:0"
    job_extra_directives: tuple[str, ...] = ()
    log_directory: str | None = None


ClusterProfile = Annotated[LocalProfile | SlurmProfile, Field(discriminator="kind")]
_adapter: TypeAdapter[LocalProfile | SlurmProfile] = TypeAdapter(ClusterProfile)


def load_profile(
    name: str, profiles_file: Path | None = None, **overrides: object
) -> LocalProfile | SlurmProfile:
    """Read profile ``name`` from a profiles YAML and apply ``overrides``.

    Raises
    ------
    ConfigError
        If the file or the profile is missing, or a setting is invalid.
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
    try:
        return _adapter.validate_python({**profiles[name], **overrides})
    except ValidationError as err:
        raise ConfigError(f"cluster profile {name!r} in {path} is invalid:\n{err}") from err
