"""Peak memory while training an emulator from a store ten times larger than a memory cap.

Run ``python benchmarks/emulator_memory.py``. It writes a ~1 GB store (655,360 Gaussian-linear
rows in 100-D, theta and x float64, chunks of 16,384 rows; x is drawn vectorised from the model
``x = theta + sqrt(0.1) eps``) and, each in a fresh subprocess:

* trains one epoch of an emulator with ``train_emulator(..., buffer_rows=BUFFER_ROWS)``: the
  streaming data module holds a shuffle buffer of that many float32 rows, a float32 staging
  copy of one store chunk, and what zarr allocates to read one chunk of one array;
* for contrast, loads the whole store with ``simulators.store.load_pairs``.

What is measured: the process's peak resident set size (``VmHWM`` of ``/proc/self/status``)
at the end, minus its resident set size (``VmRSS``) just before the work starts. Before that
point the child has imported everything and trained the same emulator once on a small store of
2,048 rows (so lazy imports and Lightning's one-off allocations are not charged to the data),
then reset its peak with ``echo 5 > /proc/self/clear_refs``. The difference is the
*additional* memory the work needed; the cap is 100 MB, a tenth of the store.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CAP_MB = 100
N_ROWS, DIM, CHUNK, BUFFER_ROWS = 655_360, 100, 16_384, 16_384


def _status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _write_store(path: Path, n_rows: int = N_ROWS) -> None:
    from simulators import make_simulator
    from simulators.store import Status, create_store, store_identity, write_rows

    simulator = make_simulator("gaussian_linear", dim=DIM)
    chunk = min(CHUNK, n_rows)
    identity = store_identity(simulator, n_samples=n_rows, chunk_size=chunk, campaign_seed=0)
    create_store(path, identity, simulator.prior.names, simulator.output_names)
    rng = np.random.default_rng(0)
    for start in range(0, n_rows, chunk):
        theta = simulator.prior.sample(rng, chunk)
        x = theta + math.sqrt(0.1) * rng.standard_normal(theta.shape)
        seeds = np.arange(start, start + chunk, dtype=np.uint64)
        ok = np.full(chunk, Status.OK, dtype=np.int8)
        write_rows(path, start, theta=theta, x=x, seed=seeds, elapsed=np.zeros(chunk), status=ok)


def _child(mode: str, store: Path, out: Path) -> None:
    from emulators import EmulatorSpec, FidelityLevel, train_emulator
    from simulators.store import load_pairs

    level = FidelityLevel(
        name="memory",
        simplification=0,
        emulator=EmulatorSpec(
            family="gaussian", hidden_features=64, batch_size=4096, max_epochs=1,
            validation_fraction=0.05,
        ),
    )  # fmt: skip
    train_emulator(store.parent / "small.zarr", level, out / "warm-up", progress=False)
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    before = _status_mb("VmRSS")
    began = time.perf_counter()
    if mode == "stream":
        train_emulator(store, level, out, progress=False, buffer_rows=BUFFER_ROWS)
    else:
        load_pairs(store)
    print(f"{before:.1f} {_status_mb('VmHWM'):.1f} {time.perf_counter() - began:.1f}")


def main() -> None:
    with tempfile.TemporaryDirectory() as name:
        store = Path(name) / "big.zarr"
        began = time.perf_counter()
        _write_store(store)
        _write_store(Path(name) / "small.zarr", 2048)
        size = sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) / 2**20
        raw = N_ROWS * 2 * DIM * 8 / 2**20
        print(f"store: {N_ROWS} rows, {raw:.0f} MB of float64 theta and x ({size:.0f} MB on disk),")
        print(f"written in {time.perf_counter() - began:.0f} s; memory cap {CAP_MB} MB")
        print("| work | RSS before (MB) | peak RSS (MB) | additional (MB) | seconds | under cap |")
        print("|---|---|---|---|---|---|")
        runs = [
            ("stream", f"train_emulator 1 epoch, buffer_rows={BUFFER_ROWS}", os.environ),
            ("whole", "load_pairs (whole store in memory)", os.environ),
        ]
        for i, (mode, label, env) in enumerate(runs):
            done = subprocess.run(
                [sys.executable, __file__, mode, str(store), str(Path(name) / f"out{i}")],
                capture_output=True, text=True, check=True, env=env,
            )  # fmt: skip
            before, peak, seconds = map(float, done.stdout.split()[-3:])
            extra = peak - before
            under = "yes" if extra < CAP_MB else "no"
            print(
                f"| {label} | {before:.0f} | {peak:.0f} | {extra:.0f} | {seconds:.0f} | {under} |"
            )


if __name__ == "__main__":
    if len(sys.argv) == 4:
        _child(sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        main()
