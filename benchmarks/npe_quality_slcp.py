"""NPE and the ``simulation`` reference on SLCP, against the likelihood (MCMC) reference.

SLCP has no exact posterior; the reference is ``LikelihoodReference(SLCP())`` (checked MCMC on
SLCP's own log-likelihood: 8 chains, warmup 200, thin 5, refused unless R-hat <= 1.05 and
ESS >= 400), ``--reference-draws`` (2,000) draws at each of ``--obs`` observations (simulated at
prior draws, seed 12345, simulation seeds 10^6 + i, as in ``npe_quality.py``), of which the first
``--draws`` are scored (they are in random order). With 1,000 draws (125 per chain) the fourth
observation was refused (ESS 215-386 < 400); 2,000 draws pass.

``--part npe``: ``train_npe`` with ``NPESettings()`` (NSF, 5 transforms) on ``--pairs`` slcp
pairs (campaign seed 0, as ``npe_quality.pairs``), per training seed; ``--draws`` draws per
observation scored by C2ST. Published sbibm NPE mean C2ST on slcp: 0.901 at 10^4 simulations,
0.831 at 10^5 (Lueckmann et al. 2021; 10 fixed observations, 10,000 draws).

``--part simulation``: ``train_simulation_reference`` (``--members`` NSF members, ``NPESettings()``)
on a campaign of its own (``--pairs`` pairs, campaign seed 21 + seed, as
``simulation_reference.py``); its mixture's C2ST per observation, the members' self-agreement,
training seconds and the member checks.

Run: ``python benchmarks/npe_quality_slcp.py --part npe|simulation [--pairs 10000] [--obs 10]
[--seeds 0] [--members 3] [--draws 1000] [--reference-draws 2000]
[--reference-cache slcp_ref.npz] [--out results.json]``.
One torch thread; prints one line per observation, then the mean, then a JSON summary line.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import torch

from inference.c2st import c2st
from inference.likelihood_reference import LikelihoodReference
from inference.npe import train_npe
from inference.seeds import child_seed
from inference.settings import NPESettings
from inference.simulation_reference import train_simulation_reference
from simulators import SLCP, Stream, sample_seeds

__all__ = ["main"]


def pairs(sim: SLCP, n: int, campaign_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` prior draws and their simulations, seeded as a campaign would."""
    idx = np.arange(n)
    theta = sim.prior.sample_from_seeds(sample_seeds(campaign_seed, idx, Stream.PRIOR))
    return theta, sim.simulate(theta, sample_seeds(campaign_seed, idx, Stream.SIMULATION))


def observations(sim: SLCP, n_obs: int) -> np.ndarray:
    """``n_obs`` observations at prior draws (seed 12345), as ``npe_quality.py`` makes them."""
    true_theta = sim.prior.sample(np.random.default_rng(12345), n_obs)
    return sim.simulate(true_theta, np.arange(n_obs, dtype=np.uint64) + 10**6)


def reference_draws(sim: SLCP, x_obs: np.ndarray, draws: int, cache: str | None) -> np.ndarray:
    """Likelihood-reference draws ``(n_obs, draws, 5)``, cached in ``cache`` (npz) if given."""
    if cache and os.path.exists(cache):
        stored = np.load(cache)
        if np.array_equal(stored["x_obs"], x_obs) and stored["draws"].shape[1] == draws:
            print(f"reference: {cache} (cached)", flush=True)
            return stored["draws"]
    reference = LikelihoodReference(sim)
    start = time.perf_counter()
    out = reference.sample(x_obs, draws, seed=0)
    for i, d in enumerate(reference.diagnostics):
        print(
            f"reference obs {i}: max R-hat {d.rhat.max():.3f}, min ESS {d.ess.min():.0f}, "
            f"{d.seconds:.0f} s",
            flush=True,
        )
    print(f"reference: {time.perf_counter() - start:.0f} s for {len(x_obs)} observations")
    if cache:
        np.savez(cache, x_obs=x_obs, draws=out)
    return out


def score(label: str, reference: np.ndarray, draws: np.ndarray) -> list[float]:
    """C2ST per observation, one printed line each, then the mean."""
    scores = []
    for i in range(len(reference)):
        scores.append(float(c2st(reference[i], draws[i], seed=i)))
        print(f"{label} obs {i}: C2ST {scores[-1]:.3f}", flush=True)
    print(f"{label} mean C2ST {np.mean(scores):.3f}", flush=True)
    return scores


def run_npe(sim: SLCP, x_obs, reference, args, seed: int) -> dict:
    """``train_npe`` with ``NPESettings()`` on campaign seed 0's pairs, one training seed."""
    theta, x = pairs(sim, args.pairs, 0)
    start = time.perf_counter()
    posterior = train_npe(theta, x, sim.prior, NPESettings(), seed=seed)
    seconds = time.perf_counter() - start
    draws = np.stack(
        [posterior.sample(x_o, args.draws, child_seed(seed, 7, i)) for i, x_o in enumerate(x_obs)]
    )
    scores = score(f"npe {args.pairs} seed {seed}", reference, draws)
    info = posterior.training
    return {
        "part": "npe",
        "pairs": args.pairs,
        "seed": seed,
        "c2st": [round(s, 4) for s in scores],
        "mean_c2st": round(float(np.mean(scores)), 4),
        "train_seconds": round(seconds, 1),
        "epochs": info.epochs,
        "converged": info.converged,
        "best_validation_loss": round(float(info.best_validation_loss), 3),
    }


def run_simulation(sim: SLCP, x_obs, reference, args, seed: int) -> dict:
    """The simulation reference on a campaign of its own (campaign seed 21 + seed)."""
    theta, x = pairs(sim, args.pairs, 21 + seed)
    ref = train_simulation_reference(
        theta, x, sim.prior, NPESettings(), seed=seed, members=args.members
    )
    start = time.perf_counter()
    draws = ref.sample(x_obs, args.draws, seed=1000 + seed)
    sample_seconds = time.perf_counter() - start
    scores = score(f"simulation {args.pairs} seed {seed}", reference, draws)
    agreement = ref.self_agreement(x_obs, args.draws, seed=3000 + seed)
    return {
        "part": "simulation",
        "pairs": args.pairs,
        "members": args.members,
        "seed": seed,
        "c2st": [round(s, 4) for s in scores],
        "mean_c2st": round(float(np.mean(scores)), 4),
        "self_agreement": [round(float(a), 4) for a in agreement.mean(axis=1)],
        "self_agreement_mean": round(float(agreement.mean()), 4),
        "train_seconds": round(ref.seconds, 1),
        "sample_seconds": round(sample_seconds, 1),
        "checks": [
            (c.member, c.attempt, round(c.best_validation_loss, 3), c.epochs, c.status, c.reason)
            for c in ref.checks
        ],
    }


def main() -> None:
    """Parse the arguments, draw (or load) the reference, run every seed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["npe", "simulation"], required=True)
    parser.add_argument("--pairs", type=int, default=10_000)
    parser.add_argument("--obs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--reference-draws", type=int, default=2000)
    parser.add_argument("--reference-cache", help="npz file to keep the MCMC reference draws in")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    sim = SLCP()
    x_obs = observations(sim, args.obs)
    reference = reference_draws(sim, x_obs, args.reference_draws, args.reference_cache)
    reference = reference[:, : args.draws]
    run = run_npe if args.part == "npe" else run_simulation
    results = []
    for seed in args.seeds:
        results.append(run(sim, x_obs, reference, args, seed))
        print(json.dumps(results[-1]), flush=True)
        if args.out:
            with open(args.out, "w") as handle:
                json.dump({"args": vars(args), "results": results}, handle, indent=1)


if __name__ == "__main__":
    main()
