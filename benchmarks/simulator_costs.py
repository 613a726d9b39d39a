"""Cost per sample of the Hodgkin-Huxley, external-command and Gaussian simulators.

Run ``python benchmarks/simulator_costs.py`` (Lorenz-96 has its own,
``benchmarks/lorenz96_throughput.py``). Hodgkin-Huxley runs at sbi's settings (120 ms at
dt = 0.01 ms, 12,000 exponential-Euler steps) one sample at a time and vectorised over
batches; the external simulator runs a trivial Python script, so its figures are the cost of
one process per sample, serially and with two at a time.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from simulators import make_simulator

TRIVIAL_SCRIPT = (
    "import json, sys; p = json.load(open(sys.argv[1])); "
    "json.dump([sum(p['theta'])], open('out.json', 'w'))"
)


def per_sample_ms(simulator, n: int, batch: int) -> float:
    theta = simulator.prior.sample(np.random.default_rng(0), n)
    seeds = np.arange(n, dtype=np.uint64)
    began = time.perf_counter()
    for start in range(0, n, batch):
        simulator.simulate(theta[start : start + batch], seeds[start : start + batch])
    return 1e3 * (time.perf_counter() - began) / n


def main() -> None:
    hh = make_simulator("hodgkin_huxley")
    external = {
        "command": [sys.executable, "-c", TRIVIAL_SCRIPT, "{params_file}"],
        "param_names": ["a"],
        "prior": {"a": {"distribution": "uniform", "low": 0.0, "high": 1.0}},
        "output_names": ["y"],
        "output_file": "out.json",
        "output_format": "json",
    }
    runs = [
        ("gaussian_linear (dim 10), batch 10,000", make_simulator("gaussian_linear"), 10_000,
         10_000),
        ("hodgkin_huxley, one at a time", hh, 4, 1),
        ("hodgkin_huxley, batch 64", hh, 64, 64),
        ("hodgkin_huxley, batch 256", hh, 256, 256),
        ("external (python script), serial", make_simulator("external", **external), 40, 40),
        ("external (python script), parallel=2",
         make_simulator("external", parallel=2, **external), 40, 40),
    ]  # fmt: skip
    print("| simulator | ms per sample | samples/s |")
    print("|---|---|---|")
    for label, sim, n, batch in runs:
        ms = per_sample_ms(sim, n, batch)
        print(f"| {label} | {ms:.3g} | {1e3 / ms:.3g} |")


if __name__ == "__main__":
    main()
