"""Run a simulator over N prior draws on a Dask cluster, chunk by chunk, into a store.

Sample i's parameters and noise come from seeds derived from (campaign seed, i), so a store's
bytes do not depend on the number of workers, the chunk size or the order tasks ran in. One task
computes and writes one whole chunk (see :mod:`cluster.execute` for retries and timeouts); a rerun
only submits chunks that still hold pending rows, so a campaign killed at any moment resumes
where it stopped. One campaign at a time writes a store (:mod:`cluster.lock`). A chunk whose
workers die (retired at their lifetime, preempted) is resubmitted; its writes are idempotent.

Before anything runs, a resumed campaign checks its store: chunks of another size than its
``chunk_size`` are refused (two tasks would share a chunk file), and chunks whose files are
truncated, corrupt or missing are reported and simulated again, alone (never the whole store).
A full disk stops the campaign with an error that says so; the chunks written are kept.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from distributed import Client, Future, as_completed
from distributed.scheduler import KilledWorker
from rich.console import Console

from cluster.execute import ChunkResult, close_worker_children, simulate_chunk
from cluster.lock import StoreLock
from cluster.progress import campaign_bar
from cluster.settings import CampaignSettings
from simulators.base import Simulator
from simulators.errors import ConfigError, EmustudyError, StoreError
from simulators.permissions import safe_umask
from simulators.store import (
    create_store,
    discard_corrupt_chunks,
    disk_full,
    pending_chunks,
    store_identity,
)

__all__ = ["CampaignSummary", "ChunkResult", "run_campaign", "simulate_chunk"]

logger = logging.getLogger("emustudy.cluster")

# Dask gives up on a task after 3 workers died running it (distributed.scheduler.allowed-failures);
# a campaign resubmits such a chunk this many more times before it stops.
WORKER_LOSSES_PER_CHUNK = 3
# Chunks submitted at once: enough for any adaptive cluster to scale on, few enough that the
# driver's and the scheduler's memory do not grow with the budget; more follow as chunks finish.
IN_FLIGHT = 1000


@dataclass(frozen=True)
class CampaignSummary:
    """What a call of :func:`run_campaign` did.

    ``counts`` holds the rows per status name this call wrote, ``retried`` the rows that took
    more than one run, ``errors`` the first error text per status name (lowest sample index
    of the first chunk that had one).
    """

    store: Path
    n_samples: int
    chunks_total: int
    chunks_run: int
    counts: dict[str, int]
    seconds: float
    retried: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def chunks_skipped(self) -> int:
        """Chunks that were already done before this call."""
        return self.chunks_total - self.chunks_run

    def __str__(self) -> str:
        done = sum(self.counts.values())
        rate = done / self.seconds if self.seconds > 0 else 0.0
        counts = ", ".join(f"{n} {name}" for name, n in sorted(self.counts.items())) or "none"
        text = (
            f"{self.store.name}: {done} samples simulated ({counts}) in {self.seconds:.1f} s "
            f"({rate:,.1f}/s); {self.chunks_run} chunks run, {self.chunks_skipped} already done"
        )
        if self.retried:
            text += f"; {self.retried} samples needed more than one run"
        return text + "".join(f"; first {name}: {error}" for name, error in self.errors.items())


def run_campaign(
    simulator: Simulator,
    store: Path,
    *,
    n_samples: int,
    campaign_seed: int,
    chunk_size: int,
    client: Client,
    attrs: dict[str, Any] | None = None,
    progress: bool = True,
    settings: CampaignSettings | None = None,
) -> CampaignSummary:
    """Simulate ``n_samples`` prior draws into ``store``, skipping chunks that are done.

    Parameters
    ----------
    simulator : Simulator
        The true simulator or an emulator.
    store : Path
        The Zarr store; created when missing, resumed when it holds the same campaign.
    n_samples, campaign_seed, chunk_size : int
        The campaign; one Dask task simulates and writes one chunk of ``chunk_size`` rows.
    client : distributed.Client
    attrs : dict, optional
        Extra provenance stored with the campaign (e.g. the fidelity level).
    progress : bool
        Print the dashboard URL, a progress bar and a summary line.
    settings : CampaignSettings, optional
        Retries, timeouts and batching; the defaults when None.

    Raises
    ------
    ConfigError
        For non-positive sizes or a negative seed.
    StoreError
        If ``store`` holds another campaign or chunks of another size than ``chunk_size``,
        another campaign is writing it, or its disk is full (rerun once there is room).
    """
    if n_samples <= 0 or chunk_size <= 0 or campaign_seed < 0:
        raise ConfigError(
            f"a campaign needs n_samples > 0, chunk_size > 0 and campaign_seed >= 0, got "
            f"n_samples={n_samples}, chunk_size={chunk_size}, campaign_seed={campaign_seed}"
        )
    settings = settings or CampaignSettings()
    store = Path(store)
    began = time.perf_counter()
    identity = store_identity(
        simulator,
        n_samples=n_samples,
        chunk_size=chunk_size,
        campaign_seed=campaign_seed,
        extra={**(attrs or {}), "campaign": settings.identity()},
    )
    console = Console(stderr=False, quiet=not progress, soft_wrap=True)  # whole lines in logs
    with safe_umask(), StoreLock(store):
        if not create_store(store, identity, simulator.prior.names, simulator.output_names):
            _repair(store)
        todo = pending_chunks(store)
        try:
            totals = _run_chunks(simulator, store, todo, campaign_seed, settings, client, console)
        finally:
            if settings.timeout_s and todo:
                _close_children(client)
        if not pending_chunks(store):
            for leftover in store.rglob("*.partial"):  # temp files of writers killed mid-write
                leftover.unlink(missing_ok=True)
    counts, errors, retried = totals
    bad = {name: n for name, n in sorted(counts.items()) if name != "ok"}
    summary = CampaignSummary(
        store=store,
        n_samples=n_samples,
        chunks_total=-(-n_samples // chunk_size),
        chunks_run=len(todo),
        counts=counts,
        seconds=time.perf_counter() - began,
        retried=retried,
        errors=errors,
    )
    if bad:
        examples = "; ".join(f"first {name}: {error}" for name, error in errors.items())
        warnings.warn(
            f"{simulator.name}: {sum(bad.values())} samples of {store} did not simulate cleanly "
            f"({', '.join(f'{n} {name}' for name, n in bad.items())}); their rows are marked in "
            f"the store's ledger (status, error, attempts) and left out of training. {examples}",
            stacklevel=2,
        )
    if console.quiet:  # one message, not two: the console when progress is shown, else the log
        logger.info("%s", summary)
    else:
        console.print(f"[bold]done[/bold] {summary}", highlight=False)
    return summary


def _repair(store: Path) -> None:
    """Make the chunks with damaged files pending again, saying which (see the module doc)."""
    damaged = discard_corrupt_chunks(store)
    if damaged:
        warnings.warn(
            f"{store}: {len(damaged)} chunk files were damaged; the rows of their chunks are "
            f"simulated again (the same bytes), the rest of the store is kept: "
            + "; ".join(damaged),
            stacklevel=3,
        )


def _cancel(futures: dict[Future, Any]) -> None:
    for future in futures:
        future.cancel()


def _close_children(client: Client) -> None:
    try:
        client.run(close_worker_children)
    except Exception as err:  # a worker that is gone took its children with it
        logger.warning("could not stop the simulators' child processes on every worker: %r", err)


def _write_failed(err: Exception, store: Path, start: int, stop: int) -> EmustudyError:
    """The error to stop a campaign with when the chunk ``start:stop`` could not be written."""
    if disk_full(err):
        return StoreError(
            f"the disk holding {store} is full (no space left on device, or the quota is spent) "
            f"while writing samples {start}:{stop}. The chunks written so far are kept and the "
            "store still opens; free space (or move the store to a larger disk) and run the "
            "same campaign again: it simulates the missing chunks only"
        )
    return EmustudyError(
        f"writing samples {start}:{stop} of {store} failed: {err!r}; the chunks written so far "
        "are kept and a rerun resumes from them"
    )


def _itself(obj: Any) -> Any:
    return obj


def _run_chunks(
    simulator: Simulator,
    store: Path,
    todo: list[tuple[int, int]],
    campaign_seed: int,
    settings: CampaignSettings,
    client: Client,
    console: Console,
) -> tuple[dict[str, int], dict[str, str], int]:
    counts: dict[str, int] = {}
    errors: dict[str, str] = {}
    retried = 0
    if not todo:
        return counts, errors, retried
    label = f"{store.parent.name}/{store.name}"
    if console.quiet:
        logger.info(
            "%s: %d chunks to simulate with %s (dashboard: %s)",
            label,
            len(todo),
            simulator.name,
            client.dashboard_link,
        )
    else:
        console.print(
            f"{label}: {len(todo)} chunks to simulate with {simulator.name}; "
            f"dashboard: {client.dashboard_link}"
        )
    run_token = uuid.uuid4().hex[:8]  # task keys of two campaigns on equal labels never collide
    # a task's result, not scattered data: when workers retire (lifetime) or die, the scheduler
    # recomputes it on the new ones instead of losing it
    remote_simulator = client.submit(
        _itself, simulator, key=f"simulator-{label}-{run_token}", pure=False
    )

    def submit(start: int, stop: int, round_: int) -> Future:
        return client.submit(
            simulate_chunk,
            remote_simulator,
            store,
            start,
            stop,
            campaign_seed,
            settings,
            key=f"simulate-{label}-{start}-{run_token}-{round_}",
            pure=False,
        )

    waiting = iter(todo)
    futures = {submit(a, b, 0): (a, b, 0) for a, b in itertools.islice(waiting, IN_FLIGHT)}
    with campaign_bar(store.name, enabled=not console.quiet) as bar:
        task = bar.add_task("simulate", total=sum(b - a for a, b in todo), failed=0)
        pending = as_completed(futures)
        for future in pending:
            start, stop, round_ = futures.pop(future)
            try:
                result = future.result()
            except KilledWorker as err:
                if round_ < WORKER_LOSSES_PER_CHUNK:
                    # workers retiring at their lifetime or preempted count as "died while
                    # running it"; the chunk rewrites the very same bytes, so run it again
                    logger.warning("%s: resubmitting samples %d:%d (%s)", label, start, stop, err)
                    again = submit(start, stop, round_ + 1)
                    futures[again] = (start, stop, round_ + 1)
                    pending.add(again)
                    continue
                _cancel(futures)
                raise EmustudyError(
                    f"the workers running samples {start}:{stop} of {store} died again and again "
                    f"({round_ + 1} submissions, each given up by Dask after its allowed "
                    "failures): the simulator may crash its process (set `timeout_s` in the "
                    "campaign settings to run it in a child process that may crash) or exceed "
                    "the workers' memory; chunks written so far are kept and a rerun resumes"
                ) from err
            except Exception as err:
                _cancel(futures)
                raise _write_failed(err, store, start, stop) from err
            for name, count in result.counts.items():
                counts[name] = counts.get(name, 0) + count
            for name, error in result.errors.items():
                errors.setdefault(name, error)
            retried += result.retried
            failed = sum(n for name, n in counts.items() if name != "ok")
            bar.update(task, advance=stop - start, failed=failed)
            for start, stop in itertools.islice(waiting, 1):  # the next chunk, if any
                refill = submit(start, stop, 0)
                futures[refill] = (start, stop, 0)
                pending.add(refill)
    return counts, errors, retried
