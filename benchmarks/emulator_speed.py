"""Emulator sampling speed against the two-scale Lorenz-96 simulator, per sample, on this CPU.

Run ``python benchmarks/emulator_speed.py``. In one run it times the simulator (default settings:
numpy, vectorised over batches of 128) on 256 prior draws, writes those runs to a store, fits
one emulator per family to them for one epoch (training quality does not change the cost of a
sample) and times ``Emulator.simulate`` on 100,000 draws. The figure is the ratio of samples
per second; the acceptance target is at least 1000x.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from emulators import Emulator, EmulatorSpec, FidelityLevel, train_emulator
from simulators import Stream, make_simulator, sample_seeds
from simulators.store import Status, create_store, store_identity, write_rows

N_SIMULATOR = 256
N_EMULATOR = 100_000
FAMILIES = {
    "maf (3 transforms, 2x64)": {"family": "maf"},
    "nsf (3 transforms, 2x64)": {"family": "nsf"},
    "mdn (5 components, 2x64)": {"family": "mdn"},
    "gaussian (2x64)": {"family": "gaussian"},
}


def main() -> None:
    simulator = make_simulator("lorenz96")
    indices = np.arange(N_SIMULATOR)
    theta = simulator.prior.sample_from_seeds(sample_seeds(0, indices, Stream.PRIOR))
    seeds = sample_seeds(0, indices, Stream.SIMULATION)
    began = time.perf_counter()
    x = simulator.simulate(theta, seeds)
    simulator_rate = N_SIMULATOR / (time.perf_counter() - began)
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "lorenz96.zarr"
        identity = store_identity(
            simulator, n_samples=N_SIMULATOR, chunk_size=N_SIMULATOR, campaign_seed=0
        )
        create_store(store, identity, simulator.prior.names, simulator.output_names)
        ok = np.full(N_SIMULATOR, Status.OK, dtype=np.int8)
        write_rows(store, 0, theta=theta, x=x, seed=seeds, elapsed=np.zeros(N_SIMULATOR), status=ok)
        big = np.arange(N_EMULATOR)
        theta_many = simulator.prior.sample_from_seeds(sample_seeds(1, big, Stream.PRIOR))
        seeds_many = sample_seeds(1, big, Stream.SIMULATION)
        print(f"two-scale Lorenz-96 (numpy, batch 128): {simulator_rate:.1f} samples/s")
        print("| emulator | samples/s | us/sample | speed-up over Lorenz-96 |")
        print("|---|---|---|---|")
        for label, spec in FAMILIES.items():
            level = FidelityLevel(
                name="speed", simplification=0, emulator=EmulatorSpec(max_epochs=1, **spec)
            )
            emulator = Emulator.load(
                train_emulator(store, level, Path(folder) / label.split()[0], progress=False)
            )
            emulator.simulate(theta_many[:1000], seeds_many[:1000])  # warm-up
            began = time.perf_counter()
            emulator.simulate(theta_many, seeds_many)
            rate = N_EMULATOR / (time.perf_counter() - began)
            print(f"| {label} | {rate:,.0f} | {1e6 / rate:.1f} | {rate / simulator_rate:,.0f}x |")


if __name__ == "__main__":
    main()
