"""C2ST's power on thin, curved structure: the platform's test at two patiences against sbi's.

Two-moons posteriors are crescents a few hundredths wide. The first sample is exact posterior
draws at an observation; the second is another exact sample blurred by isotropic Gaussian noise
of scale ``sigma`` (0 = the null case, where every test should read 0.5). A classifier that stops
training too early reads 0.5 where the blur is plain to a better-trained one. Prints, per case,
the mean accuracy over ``--seeds`` of ``inference.c2st.c2st`` with ``patience=3`` (the old
default) and with the current default, of ``sbi.utils.metrics.c2st``, and the seconds each took.

Run: ``.venv/bin/python benchmarks/c2st_power.py [--n 1000] [--seeds 3] [--sigmas 0 0.02 0.05]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from inference.c2st import C2ST_PATIENCE, c2st
from simulators import TwoMoons

__all__ = ["main"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.02, 0.05])
    args = parser.parse_args()
    torch.set_num_threads(1)
    from sbi.utils.metrics import c2st as sbi_c2st

    simulator = TwoMoons()
    x_o = np.array([-0.33, 0.62])
    tests = {
        "ours, patience 3": lambda a, b, s: c2st(a, b, s, patience=3),
        f"ours, patience {C2ST_PATIENCE}": lambda a, b, s: c2st(a, b, s),
        "sbi": lambda a, b, s: float(
            sbi_c2st(torch.as_tensor(a).float(), torch.as_tensor(b).float(), seed=s)
        ),
    }
    for sigma in args.sigmas:
        results = {name: [] for name in tests}
        seconds = dict.fromkeys(tests, 0.0)
        for seed in range(args.seeds):
            rng = np.random.default_rng(seed)
            a = simulator.sample_posterior(x_o, args.n, rng)
            b = simulator.sample_posterior(x_o, args.n, rng)
            b = b + sigma * rng.standard_normal(b.shape)
            for name, test in tests.items():
                began = time.perf_counter()
                results[name].append(test(a, b, seed))
                seconds[name] += time.perf_counter() - began
        line = "; ".join(
            f"{name} {np.mean(v):.3f} ({seconds[name] / args.seeds:.1f} s)"
            for name, v in results.items()
        )
        print(f"sigma {sigma:g}: {line}", flush=True)


if __name__ == "__main__":
    main()
