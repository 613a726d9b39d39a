"""Cluster: Dask clients from named profiles, campaigns, and the local SLURM for tests."""

from cluster.campaign import CampaignSummary, run_campaign, simulate_chunk
from cluster.client import (
    WORKER_DASK_SETTINGS,
    WORKER_ENVIRONMENT,
    close_client,
    cluster_client,
    make_client,
)
from cluster.guarded import GuardedResult, SimulatorFailedError, guarded_simulate
from cluster.lock import StoreLock
from cluster.profiles import (
    AddressProfile,
    ClusterProfile,
    LocalProfile,
    SlurmProfile,
    load_profile,
)
from cluster.settings import CampaignSettings

__all__ = [
    "AddressProfile",
    "CampaignSettings",
    "CampaignSummary",
    "GuardedResult",
    "ClusterProfile",
    "LocalProfile",
    "SimulatorFailedError",
    "SlurmProfile",
    "StoreLock",
    "WORKER_DASK_SETTINGS",
    "WORKER_ENVIRONMENT",
    "close_client",
    "cluster_client",
    "guarded_simulate",
    "load_profile",
    "make_client",
    "run_campaign",
    "simulate_chunk",
]
