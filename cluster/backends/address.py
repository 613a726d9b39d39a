"""The ``address`` backend: connect to a Dask scheduler that is already running.

Whoever started the scheduler owns it and its workers: closing the client leaves both running,
and the workers' environment and Dask settings are theirs, not the ones the ``local`` and
``slurm`` backends give the workers they start.
"""

from __future__ import annotations

from typing import Literal

from dask.utils import parse_timedelta
from distributed import Client
from distributed.comm.addressing import parse_host_port
from pydantic import field_validator

from cluster.backends.base import ClusterBackend, ClusterProfile
from simulators.errors import EmustudyError

__all__ = ["AddressProfile", "AddressBackend", "SchedulerUnreachableError"]

_SCHEMES = ("tcp", "tls")


class SchedulerUnreachableError(EmustudyError, OSError):
    """No Dask scheduler answered at a profile's ``address`` in time."""


class AddressProfile(ClusterProfile):
    """A running Dask scheduler, e.g. one started with ``dask scheduler --host 127.0.0.1``."""

    kind: Literal["address"] = "address"
    address: str
    timeout: str | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        scheme, separator, location = value.partition("://")
        try:
            if not separator or scheme not in _SCHEMES:
                raise ValueError(f"the scheme must be one of {', '.join(_SCHEMES)}")
            parse_host_port(location)
        except ValueError as err:
            raise ValueError(
                f"not a scheduler address: {value!r} ({err}); write e.g. "
                "'tcp://127.0.0.1:8786', or 'tls://HOST:8786' for a TLS scheduler"
            ) from err
        return value

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                seconds = parse_timedelta(value)
            except (ValueError, KeyError) as err:
                raise ValueError(f"not a duration: {value!r}; write e.g. '10s', '2m'") from err
            if not seconds or seconds <= 0:
                raise ValueError(f"timeout {value!r} must be positive")
        return value


class AddressBackend(ClusterBackend):
    """Connects a client to the scheduler at ``address``; starts and stops nothing."""

    kind = "address"
    profile_type = AddressProfile
    profile: AddressProfile

    def connect(self) -> Client:
        """Connect within ``timeout`` (default: Dask's ``distributed.comm.timeouts.connect``).

        Raises
        ------
        SchedulerUnreachableError
            If no scheduler answers at the address in time.
        """
        profile = self.profile
        options = {} if profile.timeout is None else {"timeout": parse_timedelta(profile.timeout)}
        try:
            return Client(profile.address, **options)
        except OSError as err:
            raise SchedulerUnreachableError(
                f"no Dask scheduler answered at {profile.address} "
                f"(timeout {profile.timeout or 'Dask default'}): {err}. Start one there, e.g. "
                "`dask scheduler --host 127.0.0.1 --port 8786` and `dask worker "
                "tcp://127.0.0.1:8786`, or fix `address` in the cluster profile"
            ) from err

    def describe(self, client: Client) -> str:
        """The address, the number of workers and the dashboard; says the cluster stays up."""
        workers = len(client.nthreads())
        return (
            f"Dask client connected to the running scheduler at {self.profile.address} "
            f"({workers} workers; closing the client leaves it running); "
            f"dashboard: {client.dashboard_link}"
        )
