"""Fit the default closures of ``lorenz96_reduced`` and check the reduced model against the truth.

Run ``python benchmarks/fit_lorenz96_closure.py``: it prints the closures as the Python literals
that ``simulators/lorenz96_reduced.py`` holds in ``DEFAULT_CLOSURE`` and ``DEFAULT_Y2_CLOSURE``
(degree 3 in X, order 2 in the parameters), then, on fresh prior draws,
the two-scale and the reduced model's statistics side by side (mean over draws, and the
relative error of the reduced model per statistic) and the cost per sample of each.
"""

from __future__ import annotations

import time

import numpy as np

from simulators.lorenz96 import OUTPUT_NAMES, Lorenz96
from simulators.lorenz96_reduced import Lorenz96Reduced, fit_closure


def main(n_check: int = 128) -> None:
    closures = {}
    for target, name in (("U", "DEFAULT_CLOSURE"), ("Y2", "DEFAULT_Y2_CLOSURE")):
        began = time.perf_counter()
        closures[target] = fit_closure(degree=3, order=2, n_theta=256, seed=0, target=target)
        print(f"fitted in {time.perf_counter() - began:.1f} s; {name} = (")
        for row in closures[target]:
            print("    (" + ", ".join(f"{a:.6g}" for a in row) + "),")
        print(")")

    truth = Lorenz96()
    reduced = Lorenz96Reduced(closure=closures["U"], y2_closure=closures["Y2"])
    rng = np.random.default_rng(1)
    theta = truth.prior.sample(rng, n_check)
    seeds = rng.integers(0, 2**63, n_check).astype(np.uint64)
    timed = {}
    for label, sim in (("two-scale", truth), ("reduced", reduced)):
        began = time.perf_counter()
        timed[label] = (sim.simulate(theta, seeds), time.perf_counter() - began)
    x_true, x_red = timed["two-scale"][0], timed["reduced"][0]
    ok = np.isfinite(x_red).all(1) & np.isfinite(x_true).all(1)
    print(f"\n{n_check} prior draws, {int((~ok).sum())} non-finite rows left out")
    print("| statistic | two-scale mean | reduced mean | median relative error |")
    print("|---|---|---|---|")
    for j, name in enumerate(OUTPUT_NAMES):
        error = np.median(np.abs(x_red[ok, j] - x_true[ok, j]) / np.abs(x_true[ok, j]))
        print(f"| {name} | {x_true[ok, j].mean():.4g} | {x_red[ok, j].mean():.4g} | {error:.3f} |")
    t_true, t_red = timed["two-scale"][1] / n_check, timed["reduced"][1] / n_check
    print(
        f"\ncost per sample: two-scale {1e3 * t_true:.2f} ms, reduced {1e3 * t_red:.3f} ms "
        f"({t_true / t_red:.0f}x cheaper)"
    )


if __name__ == "__main__":
    main()
