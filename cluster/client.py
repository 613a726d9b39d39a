"""Start a Dask cluster from a named profile and connect a client to it."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dask
from distributed import Client, LocalCluster

from cluster.profiles import LocalProfile, SlurmProfile, load_profile

__all__ = [
    "WORKER_DASK_SETTINGS",
    "WORKER_ENVIRONMENT",
    "make_client",
    "close_client",
    "cluster_client",
    "slurm_cluster_options",
]

logger = logging.getLogger("emustudy.cluster")

# Distributed's nanny sets MALLOC_TRIM_THRESHOLD_=65536, which made a numpy-vectorised
# simulator ~5x slower in a worker than in a plain process (FACTS.md); these restore speed.
WORKER_ENVIRONMENT = {
    "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20),
    "MALLOC_MMAP_THRESHOLD_": str(64 * 2**20),
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
# The statistical profiler cost ~5 % on CPU-bound simulators (FACTS.md). The event loops' 20 ms
# tick and 0.1-0.5 s monitors take the GIL from a simulator made of many small numpy calls many
# times a second: on 2 busy cores that cost a campaign ~10 % (benchmarks/campaign_throughput.py).
WORKER_DASK_SETTINGS = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "1s",
}
_DASK_SETTINGS = {
    **WORKER_DASK_SETTINGS,
    "distributed.nanny.pre-spawn-environ": WORKER_ENVIRONMENT,
}


def _dask_environment_variable(key: str, value: object) -> str:
    """``distributed.admin.tick.interval`` -> ``DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL=1s``."""
    name = "DASK_" + "__".join(part.upper().replace("-", "_") for part in key.split("."))
    return f"{name}={value}"


def _local_cluster(profile: LocalProfile) -> LocalCluster:
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


def slurm_cluster_options(profile: SlurmProfile) -> dict[str, Any]:
    """The keyword arguments of the ``SLURMCluster`` a profile describes (no job is started)."""
    prologue = [f"export {key}={value}" for key, value in WORKER_ENVIRONMENT.items()]
    prologue += [
        f"export {_dask_environment_variable(key, value)}"
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
        # workers retire before SLURM's walltime kills them; without --lifetime-restart the
        # job ends and the cluster submits a fresh one (a restart would stay in the old job)
        worker_extra_args=profile.worker_lifetime_args(),
        security=profile.security or None,
    )


def _slurm_cluster(profile: SlurmProfile):
    from dask_jobqueue import SLURMCluster

    cluster = SLURMCluster(**slurm_cluster_options(profile))
    if profile.adaptive:
        cluster.adapt(minimum_jobs=profile.minimum_jobs or 0, maximum_jobs=profile.maximum_jobs)
    else:
        cluster.scale(jobs=profile.jobs)
    return cluster


def make_client(
    profile: str | LocalProfile | SlurmProfile = "local",
    *,
    profiles_file: Path | None = None,
    **overrides: object,
) -> Client:
    """Start the cluster a profile describes and return a client connected to it.

    Parameters
    ----------
    profile : str or profile object
        A profile name from ``cluster/profiles.yaml`` (or ``profiles_file``), or a profile.
    profiles_file : Path, optional
        Your own profiles YAML.
    **overrides
        Settings that replace the profile's, e.g. ``n_workers=4`` or ``jobs=10``.

    Returns
    -------
    Client
        Closing it with :meth:`close_client` also stops the cluster it started.
    """
    if isinstance(profile, str):
        profile = load_profile(profile, profiles_file, **overrides)
    cluster = _local_cluster(profile) if profile.kind == "local" else _slurm_cluster(profile)
    client = Client(cluster)
    logger.info("Dask %s cluster started; dashboard: %s", profile.kind, client.dashboard_link)
    if profile.kind == "slurm":
        logger.info(
            "SLURM workers retire after %s (stagger %s) within the walltime %s; %s",
            f"{profile.lifetime_seconds:g} s",
            f"{profile.stagger_seconds:g} s",
            profile.walltime,
            f"adaptive {profile.minimum_jobs or 0}..{profile.maximum_jobs} jobs"
            if profile.adaptive
            else f"{profile.jobs} jobs",
        )
    return client


def close_client(client: Client) -> None:
    """Close a client from :func:`make_client` and the cluster it started."""
    cluster = client.cluster
    client.close()
    if cluster is not None:
        cluster.close()


@contextmanager
def cluster_client(
    profile: str | LocalProfile | SlurmProfile = "local",
    *,
    profiles_file: Path | None = None,
    **overrides: object,
) -> Iterator[Client]:
    """Context manager around :func:`make_client` that always stops the cluster."""
    client = make_client(profile, profiles_file=profiles_file, **overrides)
    try:
        yield client
    finally:
        close_client(client)
