"""Batch-queue backends through dask-jobqueue: one Dask worker job per batch job; SLURM here.

:class:`JobQueueProfile` holds what every dask-jobqueue cluster takes (cores, memory, queue,
walltime, worker lifetimes, adaptive scaling, TLS), :class:`JobQueueBackend` turns it into the
cluster's keyword arguments; a scheduler is a small subclass pair naming its cluster class, as
:class:`SlurmBackend` does (see :mod:`cluster.backends` for PBS).
"""

from __future__ import annotations

import sys
from abc import abstractmethod
from typing import Any, Literal

from dask.utils import parse_timedelta
from distributed import Client
from pydantic import Field, field_validator, model_validator

from cluster.backends.base import (
    WORKER_DASK_SETTINGS,
    WORKER_ENVIRONMENT,
    ClusterBackend,
    ClusterProfile,
    dask_environment_variable,
    loopback_dashboard,
)
from cluster.jobs import SubmitResources

__all__ = [
    "JobQueueProfile",
    "JobQueueBackend",
    "SlurmProfile",
    "SlurmBackend",
    "slurm_cluster_options",
    "walltime_seconds",
]


class JobQueueProfile(ClusterProfile):
    """Settings every dask-jobqueue cluster takes; a subclass adds ``kind`` and its own."""

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

    @field_validator("dashboard_address")
    @classmethod
    def _dashboard(cls, value: str) -> str:
        return loopback_dashboard(value)

    lifetime: str | None = None
    lifetime_margin: str = "5m"
    lifetime_stagger: str | None = None

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
    def _consistent(self) -> JobQueueProfile:
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
        """``dask worker`` options that retire a worker before the scheduler kills its job."""
        return [
            "--lifetime",
            f"{self.lifetime_seconds:g}s",
            "--lifetime-stagger",
            f"{self.stagger_seconds:g}s",
        ]


class SlurmProfile(JobQueueProfile):
    """A ``dask_jobqueue.SLURMCluster``: one Dask worker job per SLURM job."""

    kind: Literal["slurm"] = "slurm"
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


class JobQueueBackend(ClusterBackend):
    """Starts a dask-jobqueue cluster and scales it to ``jobs`` or adaptively.

    A subclass sets ``kind`` and ``profile_type`` and returns its cluster class from
    :meth:`cluster_type`; it may extend :meth:`cluster_options` with its own settings.
    """

    profile: JobQueueProfile

    @abstractmethod
    def cluster_type(self) -> type:
        """The dask-jobqueue cluster class, e.g. ``dask_jobqueue.SLURMCluster``."""

    def cluster_options(self) -> dict[str, Any]:
        """The keyword arguments of the cluster the profile describes (no job is started)."""
        profile = self.profile
        prologue = [f"export {key}={value}" for key, value in WORKER_ENVIRONMENT.items()]
        prologue += [
            f"export {dask_environment_variable(key, value)}"
            for key, value in WORKER_DASK_SETTINGS.items()
        ]
        scheduler_options = {"dashboard_address": profile.dashboard_address}
        if profile.scheduler_host:
            scheduler_options["host"] = profile.scheduler_host
        return dict(
            cores=profile.cores,
            processes=profile.processes,
            memory=profile.memory,
            queue=profile.queue,
            account=profile.account,
            walltime=profile.walltime,
            interface=profile.interface,
            python=sys.executable,
            job_script_prologue=prologue,
            job_extra_directives=list(profile.job_extra_directives),
            log_directory=profile.log_directory,
            scheduler_options=scheduler_options,
            # workers retire before the walltime kills them; without --lifetime-restart the
            # job ends and the cluster submits a fresh one (a restart would stay in the old job)
            worker_extra_args=profile.worker_lifetime_args(),
            security=profile.security or None,
        )

    def connect(self) -> Client:
        """Start the cluster, submit its jobs and return a client that owns it."""
        profile = self.profile
        cluster = self.cluster_type()(**self.cluster_options())
        try:
            if profile.adaptive:
                cluster.adapt(
                    minimum_jobs=profile.minimum_jobs or 0, maximum_jobs=profile.maximum_jobs
                )
            else:
                cluster.scale(jobs=profile.jobs)
            return Client(cluster)
        except BaseException:
            cluster.close()
            raise

    def describe(self, client: Client) -> str:
        """The dashboard, the worker lifetimes and the scaling."""
        profile = self.profile
        scaling = (
            f"adaptive {profile.minimum_jobs or 0}..{profile.maximum_jobs} jobs"
            if profile.adaptive
            else f"{profile.jobs} jobs"
        )
        return (
            f"Dask {self.kind} cluster started; dashboard: {client.dashboard_link}; workers "
            f"retire after {profile.lifetime_seconds:g} s (stagger {profile.stagger_seconds:g} s) "
            f"within the walltime {profile.walltime}; {scaling}"
        )


class SlurmBackend(JobQueueBackend):
    """``dask_jobqueue.SLURMCluster``."""

    kind = "slurm"
    profile_type = SlurmProfile

    def cluster_type(self) -> type:
        """``dask_jobqueue.SLURMCluster``."""
        from dask_jobqueue import SLURMCluster  # imports only when a SLURM cluster starts

        return SLURMCluster


def slurm_cluster_options(profile: SlurmProfile) -> dict[str, Any]:
    """The keyword arguments of the ``SLURMCluster`` a profile describes (no job is started)."""
    return SlurmBackend(profile).cluster_options()
