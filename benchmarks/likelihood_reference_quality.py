"""The likelihood (MCMC) reference's error against exact posteriors, and its cost.

Gaussian linear (5-D, ``thin=1``) and two moons (defaults: 8 chains, warmup 200, thin 5):
2,000 MCMC draws per observation against 2,000 exact draws, C2ST; SLCP (defaults), which has
no exact posterior: R-hat, ESS and time only.

Run: ``python benchmarks/likelihood_reference_quality.py``.
"""

from __future__ import annotations

import numpy as np

from inference.c2st import c2st
from inference.likelihood_reference import LikelihoodReference, likelihood_posterior_samples
from simulators import SLCP, GaussianLinear, TwoMoons

__all__ = ["main"]


def _observation(sim, seed: int) -> np.ndarray:
    theta = sim.prior.sample(np.random.default_rng(seed), 1)
    return sim.simulate(theta, np.array([seed], dtype=np.uint64))[0]


def _print(name: str, s: int, score: str, d) -> None:
    print(
        f"{name:<16} obs {s}: C2ST {score}, max R-hat {d.rhat.max():.3f}, "
        f"min ESS {d.ess.min():.0f}, {d.seconds:.0f} s",
        flush=True,
    )


def main() -> None:
    sim = GaussianLinear(dim=5)
    x_obs = np.stack([_observation(sim, s) for s in (1, 2)])
    reference = LikelihoodReference(sim, thin=1)  # one run per observation, child seeds of 0
    draws = reference.sample(x_obs, 2000, seed=0)
    for i, x_o in enumerate(x_obs):
        exact = sim.sample_posterior(x_o, 2000, np.random.default_rng(i))
        _print(sim.name, i + 1, f"{c2st(exact, draws[i], seed=i):.3f}", reference.diagnostics[i])
    for sim, seeds in ((TwoMoons(), (3, 4, 5)), (SLCP(), (1, 2))):
        for s in seeds:
            x_o = _observation(sim, s)
            draws, d = likelihood_posterior_samples(sim, x_o, 2000, seed=0)
            score = "n/a"
            if hasattr(sim, "sample_posterior"):
                exact = sim.sample_posterior(x_o, 2000, np.random.default_rng(0))
                score = f"{c2st(exact, draws, seed=0):.3f}"
            _print(sim.name, s, score, d)


if __name__ == "__main__":
    main()
