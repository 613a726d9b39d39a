"""NPE quality on two moons against the exact posterior: the platform's train_npe vs sbi's NPE.

For each training budget the same simulated pairs (two_moons, campaign seed 0) train every
variant with each training seed; each posterior draws 1,000 samples at 10 observations
(``--obs``; simulated at prior draws with seed 12345), scored by C2ST against 1,000 exact
posterior draws. Published sbibm NPE (NSF) means for two moons: 0.725 at 10^3, 0.606 at 10^4
(Lueckmann et al. 2021).

Run: ``python benchmarks/npe_quality.py [--budgets 1000 10000] [--seeds 0 1 2]
[--variants ...] [--obs 10] [--draws 1000] [--out results.json]``. One torch thread; prints one
line per run.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from inference.c2st import c2st
from inference.npe import train_npe
from inference.seeds import child_seed, seeded
from inference.settings import NPESettings
from simulators import Stream, TwoMoons, sample_seeds

__all__ = ["main"]

N_OBS = 10


def pairs(sim: TwoMoons, n: int, campaign_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` prior draws and their simulations, seeded as a campaign would."""
    idx = np.arange(n)
    theta = sim.prior.sample_from_seeds(sample_seeds(campaign_seed, idx, Stream.PRIOR))
    return theta, sim.simulate(theta, sample_seeds(campaign_seed, idx, Stream.SIMULATION))


def sbi_direct(theta, x, prior, estimator: str, seed: int, x_obs, draws: int) -> np.ndarray:
    """sbi's NPE with its own defaults; draws ``(n_obs, draws, 2)``."""
    from sbi.inference import NPE

    with seeded(seed):
        trainer = NPE(prior.to_torch(), density_estimator=estimator, show_progress_bars=False)
        trainer.append_simulations(torch.as_tensor(theta).float(), torch.as_tensor(x).float())
        trainer.train()
        posterior = trainer.build_posterior()
        return np.stack(
            [
                posterior.sample((draws,), x=torch.as_tensor(x_o).float(), show_progress_bars=False)
                .double()
                .numpy()
                for x_o in x_obs
            ]
        )


def platform(theta, x, prior, settings: NPESettings, seed: int, x_obs, draws: int) -> np.ndarray:
    """The platform's train_npe; draws ``(n_obs, draws, 2)``."""
    posterior = train_npe(theta, x, prior, settings, seed=seed)
    return np.stack(
        [posterior.sample(x_o, draws, child_seed(seed, 7, i)) for i, x_o in enumerate(x_obs)]
    )


VARIANTS = {
    "train_npe default": lambda t, x, p, s, o, d: platform(t, x, p, NPESettings(), s, o, d),
    "train_npe nsf": lambda t, x, p, s, o, d: platform(
        t, x, p, NPESettings(density_estimator="nsf"), s, o, d
    ),
    "sbi NPE nsf": lambda t, x, p, s, o, d: sbi_direct(t, x, p, "nsf", s, o, d),
    "sbi NPE maf": lambda t, x, p, s, o, d: sbi_direct(t, x, p, "maf", s, o, d),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--seeds-large",
        type=int,
        nargs="+",
        default=[0],
        help="training seeds for budgets >= 10,000",
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--draws", type=int, default=1000, help="draws per posterior (sbibm scores 10,000)"
    )
    parser.add_argument("--obs", type=int, default=N_OBS, help="observations scored")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sim = TwoMoons()
    true_theta = sim.prior.sample(np.random.default_rng(12345), args.obs)
    x_obs = sim.simulate(true_theta, np.arange(args.obs, dtype=np.uint64) + 10**6)
    exact = [
        sim.sample_posterior(x_o, args.draws, np.random.default_rng(i))
        for i, x_o in enumerate(x_obs)
    ]
    results = []
    for budget in args.budgets:
        theta, x = pairs(sim, budget)
        for seed in args.seeds if budget < 10_000 else args.seeds_large:
            for name in args.variants:
                start = time.perf_counter()
                draws = VARIANTS[name](theta, x, sim.prior, seed, x_obs, args.draws)
                seconds = time.perf_counter() - start
                scores = [c2st(exact[i], draws[i], seed=i) for i in range(args.obs)]
                row = {
                    "budget": budget,
                    "variant": name,
                    "seed": seed,
                    "c2st": scores,
                    "mean": float(np.mean(scores)),
                    "seconds": seconds,
                }
                results.append(row)
                print(
                    f"{budget:>6} {name:<18} seed {seed}: C2ST {row['mean']:.3f} "
                    f"({' '.join(f'{s:.2f}' for s in scores)}) {seconds:.0f} s",
                    flush=True,
                )
                if args.out:
                    with open(args.out, "w") as handle:
                        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
