"""Start (or reach) a Dask cluster from a named profile and connect a client to it.

The profile's ``kind`` picks the backend (:mod:`cluster.backends`): ``local`` and ``slurm``
start a cluster that closing the client stops; ``address`` connects to a running scheduler and
leaves it running.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distributed import Client

from cluster.backends import (
    WORKER_DASK_SETTINGS,
    WORKER_ENVIRONMENT,
    ClusterProfile,
    backend_for,
    slurm_cluster_options,
)
from cluster.profiles import load_profile

__all__ = [
    "WORKER_DASK_SETTINGS",
    "WORKER_ENVIRONMENT",
    "make_client",
    "close_client",
    "cluster_client",
    "slurm_cluster_options",
]

logger = logging.getLogger("emustudy.cluster")


def make_client(
    profile: str | ClusterProfile = "local",
    *,
    profiles_file: Path | None = None,
    **overrides: object,
) -> Client:
    """Start the cluster a profile describes (or reach it) and return a client connected to it.

    Parameters
    ----------
    profile : str or ClusterProfile
        A profile name from ``cluster/profiles.yaml`` (or ``profiles_file``), or a profile.
    profiles_file : Path, optional
        Your own profiles YAML.
    **overrides
        Settings that replace the profile's, e.g. ``n_workers=4`` or ``jobs=10``.

    Returns
    -------
    Client
        Closing it with :meth:`close_client` also stops the cluster it started; a cluster it
        only connected to (``kind: address``) keeps running.

    Raises
    ------
    ConfigError
        If the profile is unknown, of an unknown kind, or invalid.
    """
    if isinstance(profile, str):
        profile = load_profile(profile, profiles_file, **overrides)
    backend = backend_for(profile)
    client = backend.connect()
    logger.info("%s", backend.describe(client))
    return client


def close_client(client: Client, *, now: bool = False) -> None:
    """Close a client from :func:`make_client` and the cluster it started, if it started one.

    A client connected to a running scheduler (``kind: address``) has no ``cluster``: only the
    client closes and the scheduler and its workers keep running.

    Parameters
    ----------
    client : Client
    now : bool
        Stop at once (after Ctrl-C): the worker processes of a local cluster are killed before
        it closes, instead of each nanny waiting 4 s for a busy worker to finish its task.
        Nothing done is lost: stores mark a chunk done only after its data is written, and
        results are saved by atomic renames.
    """
    cluster = client.cluster
    if now and cluster is not None:
        _kill_local_workers(cluster)
    client.close()
    if cluster is not None:
        cluster.close()


def _kill_local_workers(cluster: object) -> None:
    """SIGKILL the worker processes of a local cluster's nannies (no-op for other clusters)."""
    for nanny in list(getattr(cluster, "workers", {}).values()):
        pid = getattr(nanny, "pid", None) if hasattr(nanny, "close_gracefully") else None
        if pid:
            nanny.close_gracefully(reason="emustudy-interrupted")  # do not start it again
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


@contextmanager
def cluster_client(
    profile: str | ClusterProfile = "local",
    *,
    profiles_file: Path | None = None,
    **overrides: object,
) -> Iterator[Client]:
    """Context manager around :func:`make_client` that always stops the cluster it started, at
    once when leaving on Ctrl-C (``KeyboardInterrupt``)."""
    client = make_client(profile, profiles_file=profiles_file, **overrides)
    interrupted = False
    try:
        yield client
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        close_client(client, now=interrupted)
