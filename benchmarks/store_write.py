"""Store writes against ``np.save`` on the same arrays, side by side in one run.

The store path is what a campaign task does: :func:`simulators.store.write_rows` writes one
chunk of rows (theta, x, seed and the ledger: status, attempts, error, elapsed, host, job id).
``np.save`` writes the same theta, x, seed and status arrays of each chunk into .npy files in the
same folder. Both are repeated, interleaved, and the best of the repeats is kept (the page cache
and other load make single figures noisy). Prints MB/s of the data arrays and their ratio.

Run: ``.venv/bin/python benchmarks/store_write.py [--rows N] [--outputs D] [--chunks 10000 50000]``
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from simulators import GaussianLinear
from simulators.store import Status, create_store, store_identity, write_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--outputs", type=int, default=100, help="columns of x")
    parser.add_argument(
        "--chunks", type=int, nargs="+", default=[10_000, 50_000], help="rows per chunk = per task"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for chunk in args.chunks:
        compare(args.rows, args.outputs, chunk, args.repeats)


def compare(n: int, n_outputs: int, chunk: int, repeats: int) -> None:
    """Time both writers on the same arrays and print their throughputs and ratio."""
    rng = np.random.default_rng(0)
    sim = GaussianLinear(dim=4)
    theta, x = rng.normal(size=(n, 4)), rng.normal(size=(n, n_outputs))
    seed, status = np.arange(n, dtype=np.uint64), np.full(n, Status.OK, dtype=np.int8)
    megabytes = (theta.nbytes + x.nbytes + seed.nbytes + status.nbytes) / 1e6
    root = Path(tempfile.mkdtemp(prefix="store-bench-"))

    def with_np_save() -> float:
        folder = root / "npy"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        began = time.perf_counter()
        for lo in range(0, n, chunk):
            for name, array in (("theta", theta), ("x", x), ("seed", seed), ("status", status)):
                np.save(folder / f"{name}-{lo}.npy", array[lo : lo + chunk])
        return time.perf_counter() - began

    def with_store() -> float:
        path = root / "store.zarr"
        shutil.rmtree(path, ignore_errors=True)
        identity = store_identity(sim, n_samples=n, chunk_size=chunk, campaign_seed=1)
        outputs = [f"x_{i}" for i in range(n_outputs)]
        create_store(path, identity, sim.prior.names, outputs)
        began = time.perf_counter()
        for lo in range(0, n, chunk):
            hi = lo + chunk
            write_rows(
                path,
                lo,
                theta=theta[lo:hi],
                x=x[lo:hi],
                seed=seed[lo:hi],
                status=status[lo:hi],
                elapsed=np.full(len(theta[lo:hi]), 0.01),
                host="bench-host",
                job_id=-1,
            )
        return time.perf_counter() - began

    try:
        times = {"np.save": [], "store (write_rows)": []}
        for _ in range(repeats):
            times["np.save"].append(with_np_save())
            times["store (write_rows)"].append(with_store())
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"{n} rows x {n_outputs} outputs, {chunk}-row chunks, {megabytes:.0f} MB of data")
    print(f"{'writer':22s} {'best s':>8s} {'MB/s':>8s}   all runs (s)")
    best = {}
    for name, runs in times.items():
        best[name] = megabytes / min(runs)
        shown = ", ".join(f"{t:.3f}" for t in runs)
        print(f"{name:22s} {min(runs):8.3f} {best[name]:8.0f}   {shown}")
    ratio = best["store (write_rows)"] / best["np.save"]
    print(f"store / np.save throughput: {ratio:.0%}  (target >= 50 %)")


if __name__ == "__main__":
    main()
