"""The ``simulation`` reference's error and cost on two moons, against the exact posterior.

For each reference seed, a campaign of its own (``--pairs`` prior draws and simulations, campaign
seed 21 + reference seed) trains a checked ensemble of ``--members`` NPE members
(:func:`inference.simulation_reference.train_simulation_reference`); its mixture draws
``--draws`` samples at ``--obs`` observations (simulated at prior draws, campaign seed 12345),
scored by C2ST against as many exact draws (``TwoMoons.sample_posterior``). Also printed: the
members' self-agreement (C2ST between pairs of members, the reference's noise floor), the
training check, and the seconds to train and to sample.

Run: ``python benchmarks/simulation_reference.py [--pairs 3000] [--members 3] [--seeds 0 1 2]
[--obs 3] [--draws 1000] [--hidden 50] [--transforms 3] [--learning-rate 5e-4] [--patience 20]
[--out results.json]``. One torch thread; NSF members, other settings at ``NPESettings``' defaults.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from inference.c2st import c2st
from inference.reference import ExactReference
from inference.settings import NPESettings
from inference.simulation_reference import train_simulation_reference
from simulators import Stream, TwoMoons, sample_seeds

__all__ = ["main"]


def pairs(sim: TwoMoons, n: int, campaign_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` prior draws and their simulations, seeded as a campaign would."""
    idx = np.arange(n)
    theta = sim.prior.sample_from_seeds(sample_seeds(campaign_seed, idx, Stream.PRIOR))
    return theta, sim.simulate(theta, sample_seeds(campaign_seed, idx, Stream.SIMULATION))


def run(args: argparse.Namespace, seed: int) -> dict:
    """One reference: its C2ST per observation, self-agreement, checks and seconds."""
    sim = TwoMoons()
    theta, x = pairs(sim, args.pairs, 21 + seed)
    settings = NPESettings(
        hidden_features=args.hidden,
        num_transforms=args.transforms,
        learning_rate=args.learning_rate,
        stop_after_epochs=args.patience,
    )
    reference = train_simulation_reference(
        theta, x, sim.prior, settings, seed=seed, members=args.members
    )
    _, x_obs = pairs(sim, args.obs, 12345)
    start = time.perf_counter()
    draws = reference.sample(x_obs, args.draws, seed=1000 + seed)
    sample_seconds = time.perf_counter() - start
    exact = ExactReference(sim).sample(x_obs, args.draws, seed=2000 + seed)
    scores = [c2st(exact[o], draws[o], seed=0) for o in range(args.obs)]
    agreement = reference.self_agreement(x_obs, args.draws, seed=3000 + seed)
    return {
        "seed": seed,
        "c2st": [round(s, 4) for s in scores],
        "mean_c2st": round(float(np.mean(scores)), 4),
        "self_agreement_mean": round(float(agreement.mean()), 4),
        "train_seconds": round(reference.seconds, 1),
        "sample_seconds": round(sample_seconds, 1),
        "checks": [
            (c.member, c.attempt, round(c.best_validation_loss, 3), c.epochs, c.status)
            for c in reference.checks
        ],
    }


def main() -> None:
    """Parse the arguments, run every seed, print one JSON line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--obs", type=int, default=3)
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=50)
    parser.add_argument("--transforms", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=5e-4)
    parser.add_argument("--patience", type=int, default=20, help="stop_after_epochs")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for seed in args.seeds:
        result = run(args, seed)
        results.append(result)
        print(json.dumps(result), flush=True)
    means = [r["mean_c2st"] for r in results]
    print(f"mean C2ST over seeds: {np.mean(means):.3f} (range {min(means):.3f}-{max(means):.3f})")
    if args.out:
        with open(args.out, "w") as handle:
            json.dump({"args": vars(args), "results": results}, handle, indent=1)


if __name__ == "__main__":
    main()
