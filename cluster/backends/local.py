"""The ``local`` backend: a ``distributed.LocalCluster`` of worker processes on this machine."""

from __future__ import annotations

import os
from typing import Literal

import dask
from distributed import Client, LocalCluster
from pydantic import Field, field_validator

from cluster.backends.base import (
    WORKER_DASK_SETTINGS,
    WORKER_ENVIRONMENT,
    ClusterBackend,
    ClusterProfile,
    loopback_dashboard,
)

__all__ = ["LocalProfile", "LocalBackend"]

_DASK_SETTINGS = {
    **WORKER_DASK_SETTINGS,
    "distributed.nanny.pre-spawn-environ": WORKER_ENVIRONMENT,
}


class LocalProfile(ClusterProfile):
    """A ``distributed.LocalCluster`` on this machine."""

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


class LocalBackend(ClusterBackend):
    """Starts a ``LocalCluster`` whose workers get the fast worker environment."""

    kind = "local"
    profile_type = LocalProfile
    profile: LocalProfile

    def connect(self) -> Client:
        """Start the cluster and return a client that owns it."""
        cluster = self._cluster()
        try:
            return Client(cluster)
        except BaseException:
            cluster.close()
            raise

    def _cluster(self) -> LocalCluster:
        profile = self.profile
        # The nanny writes pre-spawn-environ into this process's environment too; restore it so
        # that e.g. OMP_NUM_THREADS=1 does not leak into the driver and later subprocesses.
        saved = {key: os.environ.get(key) for key in WORKER_ENVIRONMENT}
        try:
            with dask.config.set(_DASK_SETTINGS):
                return LocalCluster(
                    n_workers=profile.n_workers,
                    threads_per_worker=profile.threads_per_worker,
                    memory_limit=profile.memory_limit,
                    host=profile.host,
                    dashboard_address=profile.dashboard_address,
                    processes=True,
                    security=profile.security or None,
                )
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def describe(self, client: Client) -> str:
        """``Dask local cluster started; dashboard: URL``."""
        return f"Dask local cluster started; dashboard: {client.dashboard_link}"
