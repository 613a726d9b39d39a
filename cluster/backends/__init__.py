"""Cluster backends: one small class per profile ``kind``, looked up in :data:`BACKENDS`.

==========  ===============================================================================
kind        what :func:`cluster.client.make_client` does
==========  ===============================================================================
local       starts a ``distributed.LocalCluster`` on this machine (:mod:`.local`)
slurm       starts a ``dask_jobqueue.SLURMCluster``, one worker job per SLURM job
            (:mod:`.jobqueue`)
address     connects to a scheduler that is already running; closing the client leaves it
            running (:mod:`.address`)
==========  ===============================================================================

Adding a backend
----------------
A backend is a profile model (its settings, validated when the YAML loads) and a
:class:`ClusterBackend` subclass that turns it into a client, plus one line in
:data:`BACKENDS`. Any dask-jobqueue scheduler is a few lines, e.g. PBS in
``cluster/backends/pbs.py``::

    from typing import Literal

    from cluster.backends.jobqueue import JobQueueBackend, JobQueueProfile


    class PBSProfile(JobQueueProfile):
        kind: Literal["pbs"] = "pbs"
        resource_spec: str | None = None  # e.g. "select=1:ncpus=8:mem=32GB"


    class PBSBackend(JobQueueBackend):
        kind = "pbs"
        profile_type = PBSProfile

        def cluster_type(self):
            from dask_jobqueue import PBSCluster

            return PBSCluster

        def cluster_options(self):
            return {**super().cluster_options(), "resource_spec": self.profile.resource_spec}

and ``"pbs": PBSBackend,`` below. LSF is the same with ``dask_jobqueue.LSFCluster`` (whose
``project`` takes the place of ``account``). A profile then says ``kind: pbs`` and inherits the
worker environment, lifetimes, adaptive scaling and TLS of the SLURM backend.
"""

from __future__ import annotations

from cluster.backends.address import AddressBackend, AddressProfile, SchedulerUnreachableError
from cluster.backends.base import (
    WORKER_DASK_SETTINGS,
    WORKER_ENVIRONMENT,
    ClusterBackend,
    ClusterProfile,
)
from cluster.backends.jobqueue import (
    JobQueueBackend,
    JobQueueProfile,
    SlurmBackend,
    SlurmProfile,
    slurm_cluster_options,
    walltime_seconds,
)
from cluster.backends.local import LocalBackend, LocalProfile
from simulators.errors import ConfigError

__all__ = [
    "BACKENDS",
    "WORKER_DASK_SETTINGS",
    "WORKER_ENVIRONMENT",
    "AddressBackend",
    "AddressProfile",
    "ClusterBackend",
    "ClusterProfile",
    "JobQueueBackend",
    "JobQueueProfile",
    "LocalBackend",
    "LocalProfile",
    "SchedulerUnreachableError",
    "SlurmBackend",
    "SlurmProfile",
    "backend_class",
    "backend_for",
    "known_kinds",
    "slurm_cluster_options",
    "walltime_seconds",
]

BACKENDS: dict[str, type[ClusterBackend]] = {
    "local": LocalBackend,
    "slurm": SlurmBackend,
    "address": AddressBackend,
}


def known_kinds() -> list[str]:
    """The profile kinds a backend is registered for, sorted."""
    return sorted(BACKENDS)


def backend_class(kind: object) -> type[ClusterBackend]:
    """The backend registered for ``kind``.

    Raises
    ------
    ConfigError
        If no backend is registered for ``kind``; the message lists the known kinds.
    """
    if not isinstance(kind, str) or kind not in BACKENDS:
        raise ConfigError(
            f"unknown cluster profile kind {kind!r}; known kinds: {', '.join(known_kinds())}. "
            "Set `kind:` to one of those, or add a backend (a ClusterBackend subclass and a "
            "line in cluster.backends.BACKENDS; see the cluster.backends docstring)"
        )
    return BACKENDS[kind]


def backend_for(profile: ClusterProfile) -> ClusterBackend:
    """The backend that starts (or reaches) the cluster ``profile`` describes."""
    return backend_class(profile.kind)(profile)
