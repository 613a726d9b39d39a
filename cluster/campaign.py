"""Run a simulator over N prior draws on a Dask cluster, chunk by chunk, into a store.

Sample i's parameters and noise come from seeds derived from (campaign seed, i), so a store's
bytes do not depend on the number of workers, the chunk size or the order tasks ran in. One task
computes and writes one whole chunk; a rerun only submits chunks that still hold pending rows.
"""

from __future__ import annotations

import logging
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from distributed import Client, as_completed

from cluster.progress import progress_bar
from simulators.base import Simulator
from simulators.errors import ConfigError, EmustudyError
from simulators.seeding import Stream, sample_seeds
from simulators.store import Status, create_store, pending_chunks, store_identity, write_rows

__all__ = ["CampaignSummary", "ChunkResult", "run_campaign", "simulate_chunk"]

logger = logging.getLogger("emustudy.cluster")


@dataclass(frozen=True)
class CampaignSummary:
    """What a call of :func:`run_campaign` did."""

    store: Path
    n_samples: int
    chunks_total: int
    chunks_run: int
    counts: dict[str, int]
    seconds: float

    @property
    def chunks_skipped(self) -> int:
        """Chunks that were already done before this call."""
        return self.chunks_total - self.chunks_run


@dataclass(frozen=True)
class ChunkResult:
    """Rows per status name written by one chunk, and the simulator's error if it failed."""

    counts: dict[str, int]
    error: str | None = None


def simulate_chunk(
    simulator: Simulator, store: Path, start: int, stop: int, campaign_seed: int
) -> ChunkResult:
    """Simulate rows ``start:stop`` of a campaign and write them into the store (a Dask task)."""
    indices = np.arange(start, stop)
    theta = simulator.prior.sample_from_seeds(sample_seeds(campaign_seed, indices, Stream.PRIOR))
    seeds = sample_seeds(campaign_seed, indices, Stream.SIMULATION)
    n_outputs = len(simulator.output_names)
    began, error = time.perf_counter(), None
    try:
        x = np.asarray(simulator.simulate(theta, seeds), dtype=np.float64)
    except Exception as err:  # recorded, not raised: one bad chunk must not end a campaign
        error = f"samples {start}:{stop}: {err!r}"
        x = np.full((len(indices), n_outputs), np.nan)
        status = np.full(len(indices), Status.FAILED, dtype=np.int8)
    else:
        if x.shape != (len(indices), n_outputs):
            error = f"samples {start}:{stop}: shape {x.shape}, expected {(len(indices), n_outputs)}"
            x = np.full((len(indices), n_outputs), np.nan)
            status = np.full(len(indices), Status.INVALID, dtype=np.int8)
        else:
            finite = np.isfinite(x).all(axis=1)
            status = np.where(finite, Status.OK, Status.INVALID).astype(np.int8)
    elapsed = np.full(len(indices), (time.perf_counter() - began) / len(indices))
    write_rows(store, start, theta=theta, x=x, seed=seeds, elapsed=elapsed, status=status)
    counts = {s.name.lower(): int((status == s).sum()) for s in Status if (status == s).any()}
    return ChunkResult(counts, error)


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
        Show a progress bar with the dashboard URL.

    Raises
    ------
    ConfigError
        For non-positive sizes or a negative seed.
    StoreError
        If ``store`` holds another campaign.
    """
    if n_samples <= 0 or chunk_size <= 0 or campaign_seed < 0:
        raise ConfigError(
            f"a campaign needs n_samples > 0, chunk_size > 0 and campaign_seed >= 0, got "
            f"n_samples={n_samples}, chunk_size={chunk_size}, campaign_seed={campaign_seed}"
        )
    store = Path(store)
    began = time.perf_counter()
    identity = store_identity(
        simulator,
        n_samples=n_samples,
        chunk_size=chunk_size,
        campaign_seed=campaign_seed,
        extra=attrs,
    )
    create_store(store, identity, simulator.prior.names, simulator.output_names)
    label = f"{store.parent.name}/{store.name}"
    run_token = uuid.uuid4().hex[:8]  # task keys of two campaigns on equal labels never collide
    todo = pending_chunks(store)
    n_chunks = -(-n_samples // chunk_size)
    counts: dict[str, int] = {}
    errors: list[str] = []
    if todo:
        logger.info(
            "%s: %d of %d chunks to simulate with %s (dashboard: %s)",
            label,
            len(todo),
            n_chunks,
            simulator.name,
            client.dashboard_link,
        )
        remote_simulator = client.scatter(simulator, broadcast=True, hash=False)
        futures = {
            client.submit(
                simulate_chunk,
                remote_simulator,
                store,
                start,
                stop,
                campaign_seed,
                key=f"simulate-{label}-{start}-{run_token}",
                pure=False,
            ): (start, stop)
            for start, stop in todo
        }
        with progress_bar(label, "samples", progress) as bar:
            task = bar.add_task("simulate", total=sum(b - a for a, b in todo))
            for future in as_completed(futures):
                start, stop = futures[future]
                try:
                    result = future.result()
                except Exception as err:
                    for other in futures:
                        other.cancel()
                    raise EmustudyError(
                        f"writing samples {start}:{stop} of {store} failed: {err!r}; the chunks "
                        "written so far are kept and a rerun resumes from them"
                    ) from err
                for name, count in result.counts.items():
                    counts[name] = counts.get(name, 0) + count
                errors += [result.error] if result.error else []
                bar.update(task, advance=stop - start)
    if errors:
        warnings.warn(
            f"{simulator.name}: {len(errors)} chunks of {store} did not simulate cleanly (their "
            f"rows are marked failed or invalid and left out of training); first: {errors[0]}",
            stacklevel=2,
        )
    summary = CampaignSummary(
        store=store,
        n_samples=n_samples,
        chunks_total=n_chunks,
        chunks_run=len(todo),
        counts=counts,
        seconds=time.perf_counter() - began,
    )
    logger.info(
        "%s: %d chunks run, %d already done, %s in %.1f s",
        label,
        summary.chunks_run,
        summary.chunks_skipped,
        counts or "nothing new",
        summary.seconds,
    )
    return summary
