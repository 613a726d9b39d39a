"""Samples per second of the two-scale Lorenz-96 (default settings) by backend and batch size.

Run ``python benchmarks/lorenz96_throughput.py``. Every configuration integrates the same prior
draws in one run, so the ratios compare like with like; it also times the reduced one-scale
model (``lorenz96_reduced``) on the same draws.
"""

from __future__ import annotations

import time

import numpy as np

from simulators import make_simulator


def rate(simulator, theta: np.ndarray, seeds: np.ndarray, one_at_a_time: bool = False) -> float:
    began = time.perf_counter()
    if one_at_a_time:
        for i in range(len(theta)):
            simulator.simulate(theta[i : i + 1], seeds[i : i + 1])
    else:
        simulator.simulate(theta, seeds)
    return len(theta) / (time.perf_counter() - began)


def main() -> None:
    base = make_simulator("lorenz96")
    rng = np.random.default_rng(0)
    theta = base.prior.sample(rng, 256)
    seeds = rng.integers(0, 2**63, 256).astype(np.uint64)
    runs = [
        ("numpy, one at a time", "lorenz96", {}, 8, True),
        ("numpy, batch 32", "lorenz96", {"batch_size": 32}, 256, False),
        ("numpy, batch 64", "lorenz96", {"batch_size": 64}, 256, False),
        ("numpy, batch 128 (default)", "lorenz96", {}, 256, False),
        ("numpy, batch 256", "lorenz96", {"batch_size": 256}, 256, False),
        ("torch float64 1 thread, batch 128", "lorenz96", {"backend": "torch"}, 256, False),
        ("torch float64 1 thread, batch 256", "lorenz96",
         {"backend": "torch", "batch_size": 256}, 256, False),
        ("reduced one-scale, batch 128", "lorenz96_reduced", {}, 256, False),
    ]  # fmt: skip
    reference = None
    print("| configuration (K=8, J=32, 2400 RK4 steps) | samples/s | ms/sample | vs batch 128 |")
    print("|---|---|---|---|")
    figures = []
    for label, name, settings, n, single in runs:
        sim = make_simulator(name, **settings)
        figures.append((label, rate(sim, theta[:n], seeds[:n], one_at_a_time=single)))
        if label == "numpy, batch 128 (default)":
            reference = figures[-1][1]
    for label, r in figures:
        print(f"| {label} | {r:.1f} | {1e3 / r:.2f} | {r / reference:.2f}x |")


if __name__ == "__main__":
    main()
