"""Estimated core time of each stage of a study, before it runs (``emustudy validate``).

Only the true simulator's cost is measured: the mean ``elapsed`` per sample of the study's
training store when it exists, otherwise a short calibration in this process on batches of
growing size, as campaigns run batches (:func:`simulator_seconds`). Everything else comes from
simple per-unit models whose constants were read off a measured run and the project's notes, so
the figures are **estimates** (expect a factor of 2 either way, more for large networks):

* ``simulate``: simulator seconds per sample x (train + test + observations + reference runs);
* ``train-emulator``: per ``emulator`` level, ``min(max_epochs, 60)`` epochs of
  ``EPOCH_S + BATCH_S x batches`` (the quickstart's levels took 0.1-5.8 s on a loaded core);
* ``emulate``: ``EMULATE_S`` per emulated run (quickstart: 0.34-0.48 s per 4,000 runs);
* ``emulator-error``: 200 held-out thetas x 20 draws through the true simulator and the stand-in,
  and one C2ST (``C2ST_S``);
* ``infer``: per training pair per posterior, ``NSF_PAIR_S`` for a neural spline flow and
  ``NPE_PAIR_S`` for the other estimators (quickstart, 5-D MAF: 0.5-2.8 ms; NSF with 5
  transforms, to convergence: 11 ms in ``lorenz96_small.yaml``, 16-23 ms in ``lorenz96.yaml``,
  6.7 ms for ``hodgkin_huxley.yaml``'s reference), per level, method and replicate;
* ``score``: per posterior, ``DRAW_S`` per amortised draw (``MCMC_DRAW_S`` for methods sampled
  by MCMC), ``CLASSIFIER_S`` per classifier of C2ST and L-C2ST (its null included), and the
  predictive check's simulator runs (quickstart: 3-9 s per posterior);
* ``reference``: a simulation reference's members trained like ``infer`` on its own campaign,
  or MCMC draws of a likelihood reference per observation.

A misspecification sweep's degree scores are not included.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass

import numpy as np

from inference.methods import get_method
from pipelines.config import StudyConfig
from pipelines.units import study_simulator, units

__all__ = [
    "BATCH_S",
    "C2ST_S",
    "CLASSIFIER_S",
    "DRAW_S",
    "EMULATE_S",
    "EPOCH_S",
    "MCMC_DRAW_S",
    "NPE_PAIR_S",
    "NSF_PAIR_S",
    "StageCost",
    "estimate_stage_costs",
    "simulator_seconds",
]

EPOCH_S = 0.05  # Lightning's per-epoch overhead of an emulator's training
BATCH_S = 0.002  # one emulator training step
TYPICAL_EPOCHS = 60  # early stopping usually ends emulator training near here
EMULATE_S = 1e-4  # one emulator run, task overhead included
ERROR_RUNS = 200 * 20  # the emulator error's thetas x draws (pipelines.stages._ERROR_SETTINGS)
C2ST_S = 5.0  # one C2ST on a few thousand rows
NPE_PAIR_S = 2.5e-3  # one training pair of one posterior, to convergence
NSF_PAIR_S = 1.2e-2  # the same for a neural spline flow (measured 6.7-23 ms, see above)
DRAW_S = 2e-5  # one draw of an amortised posterior
MCMC_DRAW_S = 2.5e-3  # one MCMC draw (slice sampling, chains and warm-up shared)
CLASSIFIER_S = 0.05  # one C2ST / L-C2ST classifier on ~1,000 draws
REFERENCE_MCMC_DRAWS = 2000  # a likelihood reference's draws per observation


@dataclass(frozen=True)
class StageCost:
    """One stage's estimated core time.

    Attributes
    ----------
    stage : str
    core_s : float
        Core seconds, summed over its tasks (wall time is this over the busy workers).
    basis : str
        The model behind it, in words.
    """

    stage: str
    core_s: float
    basis: str


def simulator_seconds(config: StudyConfig) -> tuple[float, str]:
    """Core seconds per true-simulator run, and how it was found.

    From the training store's mean ``elapsed`` over its finished rows when it has any;
    otherwise timed here on prior draws in batches of growing size, up to
    ``min(chunk_size, 256)``, as campaigns run batches: vectorised simulators are much cheaper
    per sample in a batch. It grows while a batch takes under 0.5 s, and also while growing
    still cuts the seconds per run by a quarter or more, as for a simulator with a large cost
    per call (Hodgkin-Huxley: 0.47 s for 1 run, 4.4 ms a run in a batch of 256). A few seconds
    at most; a simulator whose batch of 1 or 2 runs takes over 2.5 s is timed on that batch.
    """
    from pipelines.budgets import measured_seconds_per_run

    measured = measured_seconds_per_run(config)
    if measured is not None:
        return measured, "measured in the training store"
    simulator = study_simulator(config)
    rng = np.random.default_rng(0)
    largest = min(int(config.budgets.chunk_size), 256)
    n, seconds, previous = 1, _timed(simulator, rng, 1), math.inf
    while n < largest and seconds < 2.5 and (seconds < 0.5 or seconds / n < 0.75 * previous):
        grow = 8 if seconds < 0.5 or previous < math.inf else 2  # 2: is a slow run batched?
        previous = seconds / n
        n = min(grow * n, largest)
        seconds = _timed(simulator, rng, n)
    return seconds / n, f"timed here on a batch of {n}"


def _timed(simulator, rng: np.random.Generator, n: int) -> float:
    """CPU seconds of ``n`` runs, this process's and its waited-for children's (external
    simulators run as subprocesses)."""
    theta = simulator.prior.sample(rng, n)
    began = _cpu_s()
    simulator.simulate(theta, np.arange(n, dtype=np.uint64))
    return max(_cpu_s() - began, 1e-9)


def _cpu_s() -> float:
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def estimate_stage_costs(config: StudyConfig, simulator_s: float) -> list[StageCost]:
    """Estimated core seconds of each stage of ``config``'s study.

    Parameters
    ----------
    config : StudyConfig
    simulator_s : float
        Core seconds per true-simulator run (:func:`simulator_seconds`).

    Returns
    -------
    list of StageCost
        ``simulate``, ``train-emulator``, ``emulate``, ``emulator-error``, ``infer``,
        ``score`` and, for a simulation or likelihood reference, ``reference``.
    """
    budgets, n_obs = config.budgets, config.n_observations
    runs = budgets.train + budgets.test + n_obs + config.reference_budget
    rows = [StageCost("simulate", simulator_s * runs, f"{runs:,} runs x {simulator_s:.3g} s")]

    emulators = [lv for lv in config.ladder if lv.kind == "emulator"]
    emulated = [lv for lv in config.ladder if lv.kind != "finetune"]
    train_s = sum(_emulator_training_s(lv.emulator, budgets.train) for lv in emulators)
    rows.append(StageCost("train-emulator", train_s, f"{len(emulators)} emulators"))
    rows.append(
        StageCost(
            "emulate",
            len(emulated) * budgets.emulated_runs * EMULATE_S,
            f"{len(emulated)} levels x {budgets.emulated_runs:,} runs",
        )
    )
    error_s = ERROR_RUNS * (simulator_s + EMULATE_S) + C2ST_S
    rows.append(
        StageCost(
            "emulator-error",
            len(emulated) * error_s,
            f"{len(emulated)} levels x {ERROR_RUNS:,} simulator runs and a C2ST",
        )
    )

    found = units(config, [*config.ladder, None])
    replicates = config.inference.replicates
    infer_s = score_s = 0.0
    for unit in found:
        pairs = _training_pairs(unit.level, config)
        infer_s += replicates * pairs * _pair_s(config.inference.npe)
        score_s += replicates * _scoring_s(config, unit.method, simulator_s)
    label = f"{len(found)} units (level x method) x {replicates} replicates"
    rows.append(StageCost("infer", infer_s, label))
    rows.append(StageCost("score", score_s, label))

    if config.reference_kind == "simulation":
        members = config.reference.members
        rows.append(
            StageCost(
                "reference",
                members * config.reference_budget * _pair_s(config.reference.network),
                f"{members} members on {config.reference_budget:,} runs",
            )
        )
    elif config.reference_kind == "likelihood":
        rows.append(
            StageCost(
                "reference",
                n_obs * REFERENCE_MCMC_DRAWS * MCMC_DRAW_S,
                f"MCMC at {n_obs} observations",
            )
        )
    return rows


def _pair_s(network) -> float:
    """Core seconds per training pair of one posterior with ``network``'s density estimator."""
    return NSF_PAIR_S if network.density_estimator in ("nsf", "zuko_nsf") else NPE_PAIR_S


def _emulator_training_s(spec, train: int) -> float:
    n = spec.train_samples or train
    epochs = min(spec.max_epochs, TYPICAL_EPOCHS)
    return epochs * (EPOCH_S + BATCH_S * math.ceil(n / spec.batch_size))


def _training_pairs(level, config: StudyConfig) -> int:
    if level is None:
        return config.budgets.train  # the ceiling trains on true-simulator runs
    if level.kind == "finetune":
        return level.true_runs  # continues its base's posterior on a few true runs
    return config.budgets.emulated_runs


def _scoring_s(config: StudyConfig, method: str, simulator_s: float) -> float:
    """One posterior's scoring: its draws, its classifiers and its predictive check."""
    scores, n_obs = config.scores, config.n_observations
    amortised = get_method(method).amortised
    test_pairs = (
        config.budgets.test if amortised else min(config.budgets.test, scores.mcmc_test_pairs)
    )
    draws = n_obs * scores.posterior_samples + test_pairs * scores.sbc_samples
    classifiers = n_obs * (2 + scores.lc2st_null)  # C2ST, L-C2ST and its null
    ppc = n_obs * scores.ppc_samples * simulator_s
    return draws * (DRAW_S if amortised else MCMC_DRAW_S) + classifiers * CLASSIFIER_S + ppc
