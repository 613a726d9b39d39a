"""What a cluster backend is: a profile model and a class that turns it into a Dask client."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from distributed import Client
from pydantic import BaseModel, ConfigDict

__all__ = [
    "loopback_dashboard",
    "WORKER_DASK_SETTINGS",
    "WORKER_ENVIRONMENT",
    "ClusterBackend",
    "ClusterProfile",
    "dask_environment_variable",
]

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


def dask_environment_variable(key: str, value: object) -> str:
    """``distributed.admin.tick.interval`` -> ``DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL=1s``."""
    name = "DASK_" + "__".join(part.upper().replace("-", "_") for part in key.split("."))
    return f"{name}={value}"


class ClusterProfile(BaseModel):
    """The settings of one named profile; ``kind`` names the backend that reads them.

    Each backend subclasses this with ``kind: Literal["<its kind>"] = "<its kind>"`` and its own
    fields. Profiles are frozen and refuse unknown keys, so a typo fails when the YAML loads.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: str


class ClusterBackend(ABC):
    """Turns one kind of profile into a client connected to a Dask cluster.

    A subclass sets ``kind`` and ``profile_type`` and implements :meth:`connect`; one line in
    :data:`cluster.backends.BACKENDS` makes profiles of that kind usable.

    Parameters
    ----------
    profile : ClusterProfile
        An instance of the subclass's ``profile_type``.
    """

    kind: ClassVar[str]
    profile_type: ClassVar[type[ClusterProfile]]

    def __init__(self, profile: ClusterProfile) -> None:
        if not isinstance(profile, self.profile_type):
            raise TypeError(
                f"{type(self).__name__} reads {self.profile_type.__name__} profiles, "
                f"got {type(profile).__name__}; use cluster.backends.backend_for(profile)"
            )
        self.profile = profile

    @abstractmethod
    def connect(self) -> Client:
        """Start the cluster (or reach a running one) and return a client connected to it.

        Returns
        -------
        Client
            A cluster the backend started is the client's ``cluster``, so that
            :func:`cluster.client.close_client` stops it; a client to a cluster the backend did
            not start has ``cluster=None`` and closing it leaves that cluster running.
        """

    @abstractmethod
    def describe(self, client: Client) -> str:
        """One log line: what ``client`` is connected to and where its dashboard is."""


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
