"""Named cluster profiles: a commented YAML file, validated into typed settings."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from dask.utils import parse_timedelta
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from cluster.jobs import SubmitResources
from simulators.errors import ConfigError

__all__ = [
    "DEFAULT_PROFILES",
    "LocalProfile",
    "SlurmProfile",
    "ClusterProfile",
    "load_profile",
    "loopback_dashboard",
    "walltime_seconds",
]

DEFAULT_PROFILES = Path(__file__).with_name("profiles.yaml")


def loopback_dashboard(address: str) -> str:
    """A dashboard address with its host, 127.0.0.1 where none is given (``":0"``, ``"8787"``).

    Dask binds a host-less dashboard address to every interface (0.0.0.0) while its link says
    127.0.0.1; an explicit host (``"0.0.0.0:8787"``) is kept as the user wrote it.
    """
    address = str(address).strip()
    if address.startswith(":"):
        return f"127.0.0.1{address}"
    if address.isdigit():
        return f"127.0.0.1:{address}"
    return address


class LocalProfile(BaseModel):
    """A ``distributed.LocalCluster`` on this machine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["local"] = "local"
    n_workers: int = Field(2, gt=0)
    threads_per_worker: int = Field(1, gt=0)
    memory_limit: str = "auto"
    host: str = "127.0.0.1"
    dashboard_address: str = "127.0.0.1:8787"
    security: bool = False

    @field_validator("dashboard_address")
    @classmethod
    def _dashboard(cls, value: str) -> str:
        return loopback_dashboard(value)


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
    security: bool = False
    minimum_jobs: int | None = Field(None, ge=0)
    maximum_jobs: int | None = Field(None, gt=0)
    lifetime: str | None = None
    lifetime_margin: str = "5m"
    lifetime_stagger: str | None = None

    @field_validator("dashboard_address")
    @classmethod
    def _dashboard(cls, value: str) -> str:
        return loopback_dashboard(value)

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, value: str) -> str:
        walltime_seconds(value)
        return value

    @field_validator("lifetime", "lifetime_margin", "lifetime_stagger")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_timedelta(value)
            except (ValueError, KeyError) as err:
                raise ValueError(
                    f"not a duration: {value!r}; write e.g. '90s', '5m', '1h'"
                ) from err
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SlurmProfile:
        if self.maximum_jobs is not None and (self.minimum_jobs or 0) > self.maximum_jobs:
            raise ValueError(
                f"minimum_jobs={self.minimum_jobs} exceeds maximum_jobs={self.maximum_jobs}"
            )
        lifetime, stagger = self.lifetime_seconds, self.stagger_seconds
        if lifetime <= 0 or lifetime + stagger >= walltime_seconds(self.walltime):
            raise ValueError(
                f"worker lifetime {lifetime:g} s (+ stagger {stagger:g} s) must be positive and "
                f"end before the walltime {self.walltime!r}; lower lifetime or lifetime_margin, "
                "or raise walltime"
            )
        return self

    @property
    def adaptive(self) -> bool:
        """Whether the cluster scales adaptively between ``minimum_jobs`` and ``maximum_jobs``."""
        return self.maximum_jobs is not None

    @property
    def lifetime_seconds(self) -> float:
        """Seconds a worker lives: ``lifetime``, or the walltime minus ``lifetime_margin``."""
        if self.lifetime is not None:
            return float(parse_timedelta(self.lifetime))
        return walltime_seconds(self.walltime) - float(parse_timedelta(self.lifetime_margin))

    @property
    def stagger_seconds(self) -> float:
        """Random spread of lifetimes (default: a fifth of the lifetime, at most half the
        margin), so that workers are not all replaced at once."""
        if self.lifetime_stagger is not None:
            return float(parse_timedelta(self.lifetime_stagger))
        margin = walltime_seconds(self.walltime) - self.lifetime_seconds
        return max(0.0, min(self.lifetime_seconds / 5, margin / 2))

    def worker_lifetime_args(self) -> list[str]:
        """``dask worker`` options that retire a worker before SLURM kills its job."""
        return [
            "--lifetime",
            f"{self.lifetime_seconds:g}s",
            "--lifetime-stagger",
            f"{self.stagger_seconds:g}s",
        ]

    # Resources of each stage's job under `emustudy submit` (see cluster/jobs.py).
    submit: SubmitResources = SubmitResources()


def walltime_seconds(walltime: str) -> float:
    """Seconds in a SLURM time limit: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``.

    Raises
    ------
    ValueError
        For anything else.
    """
    text = str(walltime).strip()
    try:
        days, _, rest = text.rpartition("-")
        parts = [int(p) for p in rest.split(":")]
        if days:
            hours, minutes, seconds = (parts + [0, 0])[:3]
            total = ((int(days) * 24 + hours) * 60 + minutes) * 60 + seconds
        elif len(parts) == 1:
            total = parts[0] * 60
        elif len(parts) == 2:
            total = parts[0] * 60 + parts[1]
        elif len(parts) == 3:
            total = (parts[0] * 60 + parts[1]) * 60 + parts[2]
        else:
            raise ValueError
    except ValueError:
        raise ValueError(
            f"walltime {walltime!r} is not a SLURM time limit; "
            "write e.g. '00:30:00' or '1-00:00:00'"
        ) from None
    if total <= 0:
        raise ValueError(f"walltime {walltime!r} must be positive")
    return float(total)


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
