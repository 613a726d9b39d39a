"""Lorenz-96 campaign throughput: Dask workers against one process and sbi, side by side.

One run measures, on the same simulator, parameters and batch size:

* one process simulating vectorised batches in a loop (the ideal per core);
* sbi's ``simulate_for_sbi`` with joblib, ``num_workers=2``;
* ``run_campaign`` into a store on 1 and 2 local Dask workers with emustudy's worker environment;
* the same on 2 workers with distributed's default nanny environment
  (``MALLOC_TRIM_THRESHOLD_=65536``), which emustudy's workers do not pay;
* the same on 2 workers with emustudy's environment but distributed's default event-loop
  intervals (a 20 ms tick, 0.1-0.5 s monitors), which emustudy's workers do not pay either;
* the same on 2 workers with ``timeout_s`` set (each chunk in a killable child process);
* per-task overhead: bare Dask no-op tasks, and one-sample campaign chunks (with their writes).

The one-process rate is measured first and last; the ideal is twice their mean, because a
shared virtual machine's speed drifts by several per cent within minutes. Prints each figure and
a table of rates and ratios. The machine should be otherwise idle.

Run: ``.venv/bin/python benchmarks/campaign_throughput.py [--n 1024] [--batch 256]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import torch
from distributed import Client, LocalCluster

from cluster import CampaignSettings, close_client, make_client, run_campaign
from cluster.client import WORKER_ENVIRONMENT
from simulators import GaussianLinear, Stream, make_simulator, sample_seeds


class _SbiSimulator:
    """sbi's calling convention (a batch of theta in, a tensor out) around our simulator.

    With several workers sbi hands the simulator numpy batches, with one worker tensors."""

    def __init__(self, simulator):
        self.simulator = simulator

    def __call__(self, theta) -> torch.Tensor:
        seeds = np.random.default_rng(int(np.random.randint(2**31))).integers(
            2**63, size=len(theta), dtype=np.uint64
        )
        theta = np.asarray(theta, dtype=np.float64)
        return torch.as_tensor(self.simulator.simulate(theta, seeds))


class _FixedProposal:
    """Hands sbi the very parameters the other contenders simulate."""

    def __init__(self, theta: np.ndarray):
        self.theta = torch.as_tensor(theta)

    def sample(self, shape):
        return self.theta[: shape[0]]


def single_process(simulator, theta, seeds, batch: int) -> float:
    began = time.perf_counter()
    for lo in range(0, len(theta), batch):
        simulator.simulate(theta[lo : lo + batch], seeds[lo : lo + batch])
    return len(theta) / (time.perf_counter() - began)


def sbi_joblib(simulator, theta, batch: int, workers: int) -> float:
    from sbi.inference import simulate_for_sbi

    began = time.perf_counter()
    simulate_for_sbi(
        _SbiSimulator(simulator),
        _FixedProposal(theta),
        num_simulations=len(theta),
        num_workers=workers,
        simulation_batch_size=batch,
        seed=0,
        show_progress_bar=False,
    )
    return len(theta) / (time.perf_counter() - began)


def _default_env_client(n_workers: int, environment: dict[str, str] | None = None) -> Client:
    """A LocalCluster with distributed's default event-loop intervals (only the profiler off),
    and its default nanny environment unless ``environment`` is given."""
    saved = {key: os.environ.get(key) for key in WORKER_ENVIRONMENT}
    settings: dict = {"distributed.worker.profile.enabled": False}
    if environment is not None:
        settings["distributed.nanny.pre-spawn-environ"] = environment
    try:
        with dask.config.set(settings):
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address="127.0.0.1:0",
            )
    finally:  # the nanny copies its environment into this process (FACTS.md)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Client(cluster)


def campaign(client: Client, simulator, n: int, batch: int, root: Path, **settings) -> float:
    workers = len(client.scheduler_info()["workers"])
    kwargs = dict(campaign_seed=1, chunk_size=batch, client=client, progress=False)
    if settings:
        kwargs["settings"] = CampaignSettings(**settings)
    # warm-up: every worker imports the simulator and runs one chunk before the clock starts
    run_campaign(
        simulator, root / f"warm-{time.time_ns()}.zarr", n_samples=batch * workers, **kwargs
    )
    began = time.perf_counter()
    run_campaign(simulator, root / f"run-{time.time_ns()}.zarr", n_samples=n, **kwargs)
    return n / (time.perf_counter() - began)


def overheads(client: Client, root: Path, tasks: int) -> tuple[float, float]:
    """Milliseconds per task: a bare no-op Dask task, and a one-sample campaign chunk."""
    workers = len(client.scheduler_info()["workers"])
    client.gather(client.map(int, range(workers * 10), pure=False))
    began = time.perf_counter()
    client.gather(client.map(int, range(tasks), pure=False))
    bare = (time.perf_counter() - began) * workers / tasks * 1e3
    sim = GaussianLinear(dim=2)
    began = time.perf_counter()
    run_campaign(
        sim,
        root / "overhead.zarr",
        n_samples=tasks // 4,
        campaign_seed=1,
        chunk_size=1,
        client=client,
        progress=False,
    )
    chunk = (time.perf_counter() - began) * workers / (tasks // 4) * 1e3
    return bare, chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="samples per contender")
    parser.add_argument("--batch", type=int, default=256, help="samples per batch = chunk")
    parser.add_argument("--window", type=float, default=10.0, help="lorenz96 window")
    parser.add_argument("--tasks", type=int, default=1000, help="tasks for the overhead figure")
    args = parser.parse_args()
    simulator = make_simulator("lorenz96", window=args.window, batch_size=args.batch)
    index = np.arange(args.n)
    theta = simulator.prior.sample_from_seeds(sample_seeds(1, index, Stream.PRIOR))
    seeds = sample_seeds(1, index, Stream.SIMULATION)
    root = Path(tempfile.mkdtemp(prefix="campaign-bench-"))
    rates: dict[str, float] = {}
    try:
        simulator.simulate(theta[:8], seeds[:8])  # warm-up
        first = single_process(simulator, theta, seeds, args.batch)
        print(f"one process (first): {first:.1f} samples/s", flush=True)
        rates["sbi simulate_for_sbi, 2 joblib workers"] = sbi_joblib(
            simulator, theta, args.batch, workers=2
        )
        print(f"sbi joblib x2: {rates['sbi simulate_for_sbi, 2 joblib workers']:.1f}/s", flush=True)
        for workers in (1, 2):
            client = make_client("local", n_workers=workers, dashboard_address="127.0.0.1:0")
            try:
                name = f"campaign, {workers} Dask worker{'s' * (workers > 1)}"
                rates[name] = campaign(client, simulator, args.n, args.batch, root)
                print(f"{name}: {rates[name]:.1f}/s", flush=True)
                if workers == 2:
                    name = "campaign, 2 workers, timeout_s set (child processes)"
                    rates[name] = campaign(
                        client, simulator, args.n, args.batch, root, timeout_s=60.0
                    )
                    print(f"{name}: {rates[name]:.1f}/s", flush=True)
                    bare_ms, chunk_ms = overheads(client, root, args.tasks)
            finally:
                close_client(client)
        client = _default_env_client(2)
        try:
            name = "campaign, 2 workers, distributed's default malloc env"
            rates[name] = campaign(client, simulator, args.n, args.batch, root)
            print(f"{name}: {rates[name]:.1f}/s", flush=True)
        finally:
            close_client(client)
        client = _default_env_client(2, environment=WORKER_ENVIRONMENT)
        try:
            name = "campaign, 2 workers, distributed's default tick/monitors"
            rates[name] = campaign(client, simulator, args.n, args.batch, root)
            print(f"{name}: {rates[name]:.1f}/s", flush=True)
        finally:
            close_client(client)
        last = single_process(simulator, theta, seeds, args.batch)
        print(f"one process (last): {last:.1f} samples/s", flush=True)
        rates = {"one process, vectorised (mean of first, last)": (first + last) / 2, **rates}
    finally:
        shutil.rmtree(root, ignore_errors=True)

    ideal = 2 * rates["one process, vectorised (mean of first, last)"]
    two = rates["campaign, 2 Dask workers"]
    print()
    print(f"{'contender':58s} {'samples/s':>10s} {'vs ideal 2x':>12s}")
    for name, rate in rates.items():
        print(f"{name:58s} {rate:10.1f} {rate / ideal:11.1%}")
    print()
    print(f"2 workers vs ideal (2 x one process):    {two / ideal:.1%}   (target >= 90 %)")
    print(
        f"2 workers vs sbi simulate_for_sbi:       "
        f"{two / rates['sbi simulate_for_sbi, 2 joblib workers']:.2f}x (target >= 1)"
    )
    print(f"scaling 1 -> 2 workers:                  {two / rates['campaign, 1 Dask worker']:.2f}x")
    default = rates["campaign, 2 workers, distributed's default malloc env"]
    print(f"emustudy worker env vs distributed's:    {two / default:.2f}x faster")
    intervals = rates["campaign, 2 workers, distributed's default tick/monitors"]
    print(f"emustudy event-loop intervals vs default: {two / intervals:.2f}x faster")
    print(f"one process first / last:                {first:.1f} / {last:.1f} samples/s")
    timeout = rates["campaign, 2 workers, timeout_s set (child processes)"]
    print(f"timeout_s set (child process) costs:     {1 - timeout / two:.1%} of the rate")
    print(
        f"per-task overhead: bare Dask {bare_ms:.2f} ms; "
        f"one-sample campaign chunk (with its store write) {chunk_ms:.1f} ms"
    )


if __name__ == "__main__":
    main()
