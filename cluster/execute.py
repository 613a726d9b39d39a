"""Simulate one chunk of a campaign on a worker: batches, per-sample retries, timeouts, ledger.

``timeout_s`` is per sample. A call of ``k`` rows gets the deadline ``timeout_s + k * pace``,
where ``pace`` is the largest seconds per row of the last few calls that succeeded on this worker:
a hung sample holds its worker at most ``timeout_s`` beyond the call's expected time. Until a
worker has measured its pace, its first calls ramp up from 1 row (deadline ``timeout_s``) by a
factor of 4 to the batch size. A call that times out is rerun one sample at a time, each with the
deadline ``timeout_s + pace``, so the hung sample is found and only it is marked ``timeout``.

A chunk runs in batches. A batch that raises, dies, times out or returns a wrong shape or dtype
is split into single samples, so one bad theta never fails its neighbours; each of those runs
alone, and one that raises is retried up to ``retries`` times. A sample whose output has the
wrong shape or is not real numbers (complex, strings, objects) is INVALID, with the problem and
its fix in its error text. Per row the ledger records the status, the
last error text, the runs it took (``attempts``: 1 when its batch succeeded, else its own runs),
the seconds spent, the host and the SLURM job id.
"""

from __future__ import annotations

import os
import socket
import threading
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cluster.isolation import CallOutcome, IsolatedSimulator, call_in_process
from cluster.settings import CampaignSettings
from simulators.base import Simulator
from simulators.seeding import Stream, sample_seeds
from simulators.store import Status, write_rows

__all__ = ["ChunkResult", "close_worker_children", "simulate_chunk", "simulate_rows"]

NON_FINITE = "non-finite output (NaN or inf)"


@dataclass(frozen=True)
class ChunkResult:
    """Rows per status name written by one chunk, its first error text per status name, and
    the number of its rows that took more than one run."""

    counts: dict[str, int]
    errors: dict[str, str] = field(default_factory=dict)
    retried: int = 0


@dataclass
class _Ledger:
    x: np.ndarray
    status: np.ndarray
    attempts: np.ndarray
    error: np.ndarray
    elapsed: np.ndarray


def _job_id() -> int:
    value = os.environ.get("SLURM_JOB_ID", "")
    return int(value) if value.isdigit() else -1


def simulate_rows(
    simulator: Simulator,
    theta: np.ndarray,
    seeds: np.ndarray,
    settings: CampaignSettings,
    *,
    reuse_child: bool = False,
    isolate: bool | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Simulate rows with the campaign's retries and timeouts.

    Parameters
    ----------
    theta : (rows, n_params)
    seeds : (rows,)
    reuse_child : bool
        With a timeout, keep this thread's child process for the next call with the same
        simulator (a campaign's chunks on one worker) instead of starting one per call; end
        them with :func:`close_worker_children`.
    isolate : bool, optional
        Run the simulator in a killable child process; by default only when a timeout is set.

    Returns
    -------
    x : (rows, n_outputs) float64
        NaN where the status is not OK.
    status, attempts : (rows,) int8, uint8
    error : (rows,) str
        Empty for OK rows.
    elapsed : (rows,) float64
        Seconds per row.
    """
    rows, n_outputs = len(theta), len(simulator.output_names)
    ledger = _Ledger(
        x=np.full((rows, n_outputs), np.nan),
        status=np.full(rows, Status.PENDING, dtype=np.int8),
        attempts=np.zeros(rows, dtype=np.uint8),
        error=np.full(rows, "", dtype=object),
        elapsed=np.zeros(rows),
    )
    timeout = settings.timeout_s
    batch = settings.batch_size or rows
    if not (timeout or isolate):
        isolation = nullcontext(None)
    elif reuse_child:
        isolation = nullcontext(_worker_child(simulator))
    else:
        isolation = IsolatedSimulator(simulator)
    with isolation as isolated:

        def call(lo: int, hi: int) -> CallOutcome:
            if isolated is None:
                return call_in_process(simulator, theta[lo:hi], seeds[lo:hi])
            expected = isolated.pace.expected(hi - lo)
            deadline = timeout + expected if timeout else float("inf")
            outcome = isolated.call(theta[lo:hi], seeds[lo:hi], deadline)
            if outcome.timed_out:
                what = "its" if hi - lo == 1 else f"the {hi - lo} rows'"
                error = f"timed out after {timeout:g} s beyond {what} expected {expected:.2g} s"
                return replace(outcome, error=error)
            if outcome.error is None:
                isolated.pace.record(hi - lo, outcome.seconds)
            return outcome

        lo = 0
        while lo < rows:
            size = batch if isolated is None or not timeout else isolated.pace.next_size(batch)
            hi = min(lo + size, rows)
            outcome = call(lo, hi)
            if outcome.error is None and outcome.x.shape == (hi - lo, n_outputs):
                _accept(ledger, lo, outcome.x, outcome.seconds / (hi - lo), attempts=1)
            else:
                for i in range(lo, hi):  # find the culprit(s): every sample on its own
                    _run_alone(ledger, i, call, settings.retries, n_outputs)
            lo = hi
    ledger.error = ledger.error.astype(str)
    return ledger.x, ledger.status, ledger.attempts, ledger.error, ledger.elapsed


_children: dict[int, list[IsolatedSimulator]] = {}  # per worker thread, the latest last
_children_lock = threading.Lock()
_CHILDREN_PER_THREAD = 2  # a task may alternate two simulators (a stand-in and the truth)


def _worker_child(simulator: Simulator) -> IsolatedSimulator:
    """This thread's child process for this very ``simulator`` object (starting one costs
    ~0.5 s of imports, seconds for torch); a thread keeps its latest two."""
    thread = threading.get_ident()
    with _children_lock:
        kept = _children.setdefault(thread, [])
        child = next((c for c in kept if c.simulator is simulator), None)
        if child is None:
            child = IsolatedSimulator(simulator)
            while len(kept) >= _CHILDREN_PER_THREAD:
                kept.pop(0).close()
        else:
            kept.remove(child)
        kept.append(child)
    return child


def close_worker_children() -> int:
    """Stop the child processes kept by ``reuse_child``; returns how many there were."""
    with _children_lock:
        children = [child for kept in _children.values() for child in kept]
        for child in children:
            child.close()
        _children.clear()
    return len(children)


def _accept(ledger: _Ledger, lo: int, x: np.ndarray, seconds: float, attempts: int) -> None:
    hi = lo + len(x)
    finite = np.isfinite(x).all(axis=1)
    ledger.x[lo:hi][finite] = x[finite]
    ledger.status[lo:hi] = np.where(finite, Status.OK, Status.INVALID)
    ledger.error[lo:hi] = np.where(finite, "", NON_FINITE)
    ledger.attempts[lo:hi] = attempts
    ledger.elapsed[lo:hi] = seconds


def _run_alone(ledger: _Ledger, i: int, call, retries: int, n_outputs: int) -> None:
    spent = 0.0
    for attempt in range(1, retries + 2):
        outcome = call(i, i + 1)
        spent += outcome.seconds
        if outcome.timed_out:  # a hang is not retried: it would cost the timeout again
            status, error = Status.TIMEOUT, outcome.error
        elif outcome.invalid:  # the same answer again: not retried
            status, error = Status.INVALID, outcome.error
        elif outcome.error is not None:
            status, error = Status.FAILED, outcome.error
            if attempt <= retries:
                continue
        elif outcome.x.shape != (1, n_outputs):
            status = Status.INVALID
            error = (
                f"output shape {outcome.x.shape}, expected {(1, n_outputs)}: simulate() must "
                f"return one row of {n_outputs} values (one per output name) per theta row"
            )
        else:
            _accept(ledger, i, outcome.x, spent, attempts=attempt)
            return
        ledger.status[i], ledger.error[i] = status, error
        ledger.attempts[i], ledger.elapsed[i] = attempt, spent
        return


def simulate_chunk(
    simulator: Simulator,
    store: Path,
    start: int,
    stop: int,
    campaign_seed: int,
    settings: CampaignSettings | None = None,
) -> ChunkResult:
    """Simulate rows ``start:stop`` of a campaign and write them into the store (a Dask task)."""
    indices = np.arange(start, stop)
    theta = simulator.prior.sample_from_seeds(sample_seeds(campaign_seed, indices, Stream.PRIOR))
    seeds = sample_seeds(campaign_seed, indices, Stream.SIMULATION)
    x, status, attempts, error, elapsed = simulate_rows(
        simulator, theta, seeds, settings or CampaignSettings(), reuse_child=True
    )
    write_rows(
        store,
        start,
        theta=theta,
        x=x,
        seed=seeds,
        status=status,
        attempts=attempts,
        error=error,
        elapsed=elapsed,
        host=socket.gethostname(),
        job_id=_job_id(),
    )
    counts = {s.name.lower(): int((status == s).sum()) for s in Status if (status == s).any()}
    errors: dict[str, str] = {}
    for i in np.flatnonzero(status != Status.OK):
        errors.setdefault(Status(status[i]).name.lower(), f"sample {start + i}: {error[i]}")
    return ChunkResult(counts, errors, int((attempts > 1).sum()))
