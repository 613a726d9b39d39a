"""Run a simulator outside a campaign the way a campaign does: killable, retried, recorded.

Every simulator call a study makes besides its campaigns (emulator-error measurement, posterior
predictive checks, reference simulations) goes through :func:`guarded_simulate`. It is the
campaign engine's own executor (:func:`cluster.execute.simulate_rows`), always in child processes
that are SIGKILLed at the per-sample deadline, so a simulator that raises, returns NaN, crashes
its process or hangs costs its rows, never the stage: those rows come back as NaN with
``ok=False`` and the reason in ``errors``.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, final

import numpy as np

from cluster.execute import simulate_rows
from cluster.settings import CampaignSettings
from simulators.base import Simulator
from simulators.errors import EmustudyError
from simulators.store import Status

__all__ = ["GuardedResult", "GuardedSimulator", "SimulatorFailedError", "guarded_simulate"]


class SimulatorFailedError(EmustudyError):
    """Every row of a guarded simulation failed."""


@dataclass(frozen=True)
class GuardedResult:
    """What a guarded simulation returned, row by row.

    Attributes
    ----------
    x : (n, n_outputs) float64
        NaN in the rows that are not OK.
    ok : (n,) bool
    status : (n,) int8
        :class:`simulators.store.Status` codes (OK, INVALID, FAILED, TIMEOUT).
    errors : list of str
        One text per row, empty for OK rows.
    seconds : (n,) float64
        Seconds spent per row.
    """

    x: np.ndarray
    ok: np.ndarray
    status: np.ndarray
    errors: list[str]
    seconds: np.ndarray

    @property
    def n_failed(self) -> int:
        """Rows that are not OK."""
        return int((~self.ok).sum())

    def counts(self) -> dict[str, int]:
        """Rows per status name, for the statuses that occur."""
        found = {s.name.lower(): int((self.status == s).sum()) for s in Status}
        return {name: n for name, n in found.items() if n}

    def first_errors(self) -> dict[str, str]:
        """The first error text per status name that is not OK (``row i: text``)."""
        found: dict[str, str] = {}
        for i in np.flatnonzero(~self.ok):
            found.setdefault(Status(self.status[i]).name.lower(), f"row {i}: {self.errors[i]}")
        return found

    def describe(self) -> str:
        """``"3 of 20 rows lost (2 failed, 1 timeout); first failed: row 4: ..."``, or all OK."""
        if not self.n_failed:
            return f"all {len(self.ok)} rows ok"
        lost = ", ".join(f"{n} {name}" for name, n in self.counts().items() if name != "ok")
        firsts = "; ".join(f"first {name}: {text}" for name, text in self.first_errors().items())
        return f"{self.n_failed} of {len(self.ok)} rows lost ({lost}); {firsts}"

    def require_some(self, what: str) -> GuardedResult:
        """This result when a row worked; else raise, naming ``what`` and the first error.

        Raises
        ------
        SimulatorFailedError
            When no row is OK (and there was at least one row).
        """
        if len(self.ok) and not self.ok.any():
            raise SimulatorFailedError(
                f"{what}: every one of the {len(self.ok)} simulations failed "
                f"({self.describe()}). Fix the simulator for these parameters, raise "
                "`campaign.timeout_s` if they only need longer, or check its settings"
            )
        return self


def guarded_simulate(
    simulator: Simulator,
    theta: np.ndarray,
    seeds: np.ndarray,
    *,
    timeout_s: float | None = None,
    retries: int = 2,
    batch_size: int | None = None,
    workers: int = 1,
    reuse_child: bool = False,
) -> GuardedResult:
    """Simulate rows in killable child processes, with retries and per-sample timeouts.

    Parameters
    ----------
    simulator : Simulator
        Cloudpickled to each child process once.
    theta : (n, n_params)
    seeds : (n,)
        Per-row simulation seeds (a row's output depends on its seed alone, not on the batch).
    timeout_s : float, optional
        Seconds one sample may take beyond the expected time of its batch (see
        :mod:`cluster.execute`); None waits for ever, still in a child process, so a crash of
        the simulator's process costs only its rows.
    retries : int
        Extra runs of a sample that raised.
    batch_size : int, optional
        Rows per simulator call; default: all rows of a worker at once.
    workers : int
        Child processes working at once, each on a contiguous share of the rows.
    reuse_child : bool
        Keep the calling thread's child process for its next call with this very simulator
        object (starting one costs seconds of imports); end them with
        :func:`cluster.execute.close_worker_children`.

    Returns
    -------
    GuardedResult
        Never raises for a failing simulator; see :meth:`GuardedResult.require_some`.
    """
    theta = np.asarray(theta, dtype=np.float64)
    seeds = np.asarray(seeds, dtype=np.uint64)
    if theta.ndim != 2 or seeds.shape != (len(theta),):
        raise ValueError(
            f"theta must be (n, n_params) and seeds (n,), got {theta.shape} and {seeds.shape}"
        )
    settings = CampaignSettings(retries=retries, timeout_s=timeout_s, batch_size=batch_size)
    parts = [p for p in np.array_split(np.arange(len(theta)), max(1, workers)) if len(p)]

    def run(rows: np.ndarray) -> tuple:
        return simulate_rows(
            simulator, theta[rows], seeds[rows], settings, isolate=True, reuse_child=reuse_child
        )

    if len(parts) <= 1:
        results = [run(parts[0])] if parts else []
    else:
        with ThreadPoolExecutor(len(parts)) as pool:  # the children do the work
            results = list(pool.map(run, parts))
    if not results:
        x = np.zeros((0, len(simulator.output_names)))
        return GuardedResult(x, np.zeros(0, bool), np.zeros(0, np.int8), [], np.zeros(0))
    x, status, _, error, elapsed = (np.concatenate(part) for part in zip(*results, strict=True))
    ok = status == Status.OK
    return GuardedResult(x, ok, status, [str(e) for e in error], elapsed)


@final
class GuardedSimulator(Simulator):
    """A simulator whose every call runs through :func:`guarded_simulate`.

    For code outside the campaign engine that calls ``simulate`` (emulator-error measurement,
    posterior predictive checks): failed or hung rows come back as NaN rows instead of an
    exception or a hang, a warning says how many were lost and why, and a call in which every
    row failed raises :class:`SimulatorFailedError`. Other attributes (``log_prob``,
    ``has_density``, ...) are those of the wrapped simulator.

    Parameters
    ----------
    simulator : Simulator
    timeout_s, retries
        As in :class:`~cluster.settings.CampaignSettings` (per-sample timeout, extra runs).
    what : str
        Names the caller in warnings and errors (``"emulator error of level full"``).
    reuse_child : bool
        Keep each worker thread's child process between calls (see :func:`guarded_simulate`).
    """

    def __init__(
        self,
        simulator: Simulator,
        *,
        timeout_s: float | None,
        retries: int,
        what: str,
        reuse_child: bool = False,
    ) -> None:
        self.wrapped = simulator
        self.name = simulator.name
        self.prior = simulator.prior
        self.output_names = simulator.output_names
        self.timeout_s, self.retries, self.what = timeout_s, retries, what
        self.reuse_child = reuse_child

    @property
    def settings(self) -> dict[str, Any]:
        """The wrapped simulator's settings."""
        return self.wrapped.settings

    def __getattr__(self, attribute: str) -> Any:
        if attribute == "wrapped":  # not set yet (unpickling): no recursion
            raise AttributeError(attribute)
        return getattr(self.wrapped, attribute)

    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """``(batch, n_outputs)``, NaN in the rows that failed, timed out or were invalid."""
        result = guarded_simulate(
            self.wrapped,
            theta,
            seeds,
            timeout_s=self.timeout_s,
            retries=self.retries,
            reuse_child=getattr(self, "reuse_child", False),
        ).require_some(self.what)
        if result.n_failed:
            warnings.warn(f"{self.what}: {result.describe()}", RuntimeWarning, stacklevel=2)
        return result.x
