"""The stages of a study: simulate, then per level train-emulator, emulate, infer, score.

Each stage skips work whose outputs exist and match the config's digest, refuses to overwrite
outputs of another config, and runs independent levels side by side as Dask tasks.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from distributed import Client, as_completed

from cluster.campaign import run_campaign
from cluster.progress import progress_bar
from emulators.emulator import Emulator
from emulators.fidelity import FidelityLevel
from emulators.train import train_emulator
from inference.npe import TrainedPosterior, train_npe
from inference.scores import save_scores, score_posterior
from pipelines.config import StudyConfig, digest
from pipelines.layout import CEILING, StudyLayout
from pipelines.manifest import Manifest
from simulators.registry import make_simulator
from simulators.store import load_pairs, open_store

__all__ = [
    "ROLES",
    "StageOutcome",
    "stage_seed",
    "simulate",
    "train_emulators",
    "emulate",
    "infer",
    "score",
]

ROLES = ("train", "test", "observations")


@dataclass(frozen=True)
class StageOutcome:
    """What one stage did for one level (``level`` is None for study-wide stages)."""

    stage: str
    level: str | None
    ran: bool
    seconds: float


def stage_seed(seed: int, *labels: str) -> int:
    """A seed for one stage and level that does not change when other levels are added."""
    text = "/".join([str(seed), *labels])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def _budget(config: StudyConfig, role: str) -> int:
    return {
        "train": config.budgets.train,
        "test": config.budgets.test,
        "observations": config.budgets.observations,
    }[role]


def simulation_digest(config: StudyConfig) -> str:
    """Digest of everything the true-simulator stores depend on."""
    return digest(config.seed, config.simulator, config.budgets.model_dump(exclude={"emulated"}))


def simulate(
    config: StudyConfig, layout: StudyLayout, client: Client, progress: bool
) -> list[StageOutcome]:
    """Run the true simulator for the train, test and observation sets."""
    simulator = make_simulator(config.simulator.name, **config.simulator.settings)
    manifest = Manifest(layout.manifest)
    outcomes = []
    for role in ROLES:
        began = time.perf_counter()
        store, key = layout.simulations(role), digest(simulation_digest(config), role)
        if manifest.is_done(f"simulate-{role}", key, [store]):
            outcomes.append(StageOutcome(f"simulate-{role}", None, False, 0.0))
            continue
        store.parent.mkdir(parents=True, exist_ok=True)
        run_campaign(
            simulator,
            store,
            n_samples=_budget(config, role),
            campaign_seed=stage_seed(config.seed, "campaign", role),
            chunk_size=min(config.budgets.chunk_size, _budget(config, role)),
            client=client,
            attrs={"study": config.name, "role": role, "fidelity_level": "simulator"},
            progress=progress,
        )
        manifest.mark_done(f"simulate-{role}", key)
        outcomes.append(StageOutcome(f"simulate-{role}", None, True, time.perf_counter() - began))
    return outcomes


def _level_digests(config: StudyConfig, level: FidelityLevel | None) -> dict[str, str]:
    simulations = simulation_digest(config)
    if level is None:
        infer_key = digest(simulations, config.budgets.emulated_runs, config.inference)
        return {"infer": infer_key, "score": digest(infer_key, config.scores)}
    emulator_key = digest(
        simulations, level.emulator, stage_seed(config.seed, "emulator", level.name)
    )
    emulate_key = digest(emulator_key, config.budgets.emulated_runs, config.budgets.chunk_size)
    infer_key = digest(emulate_key, config.inference)
    return {
        "train-emulator": emulator_key,
        "emulate": emulate_key,
        "infer": infer_key,
        "score": digest(infer_key, config.scores),
    }


def _run_levels(
    stage: str,
    config: StudyConfig,
    layout: StudyLayout,
    client: Client,
    levels: list[FidelityLevel | None],
    outputs: Callable[[str], list[Path]],
    task: Callable[..., object],
    arguments: Callable[[FidelityLevel | None], tuple],
    progress: bool,
) -> list[StageOutcome]:
    """Submit ``task`` for every level whose ``stage`` is not done, in parallel."""
    outcomes, futures = [], {}
    for level in levels:
        name = CEILING if level is None else level.name
        manifest, key = Manifest(layout.level(name).manifest), _level_digests(config, level)[stage]
        if manifest.is_done(stage, key, outputs(name)):
            outcomes.append(StageOutcome(stage, name, False, 0.0))
            continue
        layout.level(name).root.mkdir(parents=True, exist_ok=True)
        future = client.submit(
            _timed_call, task, *arguments(level), key=f"{stage}-{name}-{key}", pure=False
        )
        futures[future] = (name, manifest, key)
    with progress_bar(stage, "levels", progress and bool(futures)) as bar:
        task_id = bar.add_task(stage, total=len(futures))
        for future in as_completed(futures):
            name, manifest, key = futures[future]
            seconds = future.result()
            manifest.mark_done(stage, key)
            outcomes.append(StageOutcome(stage, name, True, float(seconds)))
            bar.update(task_id, advance=1)
    return outcomes


def _timed_call(task: Callable[..., None], *args: object) -> float:
    """Run ``task(*args)`` (on a worker) and return the seconds it took."""
    began = time.perf_counter()
    task(*args)
    return time.perf_counter() - began


def _train_emulator_task(store: Path, level: FidelityLevel, out_dir: Path, seed: int) -> None:
    train_emulator(store, level, out_dir, seed=seed, progress=False)


def train_emulators(
    config: StudyConfig,
    layout: StudyLayout,
    client: Client,
    levels: list[FidelityLevel],
    progress: bool = False,
) -> list[StageOutcome]:
    """Train each level's emulator on the true-simulator training store."""
    return _run_levels(
        "train-emulator",
        config,
        layout,
        client,
        list(levels),
        outputs=lambda name: [layout.level(name).emulator],
        task=_train_emulator_task,
        arguments=lambda level: (
            layout.simulations("train"),
            level,
            layout.level(level.name).root,
            stage_seed(config.seed, "emulator", level.name),
        ),
        progress=progress,
    )


def emulate(
    config: StudyConfig,
    layout: StudyLayout,
    client: Client,
    levels: list[FidelityLevel],
    progress: bool,
) -> list[StageOutcome]:
    """Run each level's emulator as a simulator over the training parameters."""
    outcomes = []
    for level in levels:
        paths, began = layout.level(level.name), time.perf_counter()
        manifest, key = Manifest(paths.manifest), _level_digests(config, level)["emulate"]
        if manifest.is_done("emulate", key, [paths.emulated]):
            outcomes.append(StageOutcome("emulate", level.name, False, 0.0))
            continue
        run_campaign(
            Emulator.load(paths.emulator),
            paths.emulated,
            n_samples=config.budgets.emulated_runs,
            # the training campaign's seed: each level emulates at the very same parameters
            campaign_seed=stage_seed(config.seed, "campaign", "train"),
            chunk_size=min(config.budgets.chunk_size, config.budgets.emulated_runs),
            client=client,
            attrs={"study": config.name, "role": "emulated", "fidelity_level": level.name},
            progress=progress,
        )
        manifest.mark_done("emulate", key)
        outcomes.append(StageOutcome("emulate", level.name, True, time.perf_counter() - began))
    return outcomes


def _infer_task(config: StudyConfig, store: Path, limit: int | None, out: Path, seed: int) -> None:
    theta, x, _ = load_pairs(store, limit=limit)
    prior = make_simulator(config.simulator.name, **config.simulator.settings).prior
    train_npe(theta, x, prior, config.inference, seed=seed).save(out)


def infer(
    config: StudyConfig,
    layout: StudyLayout,
    client: Client,
    levels: list[FidelityLevel | None],
    progress: bool = False,
) -> list[StageOutcome]:
    """Train each level's posterior on its emulated store (the ceiling on true-simulator data)."""

    def arguments(level: FidelityLevel | None) -> tuple:
        name = CEILING if level is None else level.name
        store = layout.simulations("train") if level is None else layout.level(name).emulated
        limit = config.budgets.emulated_runs if level is None else None
        seed = stage_seed(config.seed, "npe", name)
        return (config, store, limit, layout.level(name).posterior, seed)

    return _run_levels(
        "infer",
        config,
        layout,
        client,
        list(levels),
        outputs=lambda name: [layout.level(name).posterior],
        task=_infer_task,
        arguments=arguments,
        progress=progress,
    )


def _score_task(config: StudyConfig, layout: StudyLayout, level: FidelityLevel | None) -> None:
    name = CEILING if level is None else level.name
    # StudyConfig guarantees an exact posterior (the only reference posterior so far)
    simulator = make_simulator(config.simulator.name, **config.simulator.settings)
    seed = stage_seed(config.seed, "score", name)
    obs = open_store(layout.simulations("observations"))
    x_obs = obs["x"].values
    rng = np.random.default_rng(stage_seed(config.seed, "reference"))
    reference = np.stack(
        [simulator.sample_posterior(x_o, config.scores.posterior_samples, rng) for x_o in x_obs]
    )
    theta_test, x_test, _ = load_pairs(layout.simulations("test"))
    posterior = TrainedPosterior.load(layout.level(name).posterior, simulator.prior)
    scores = score_posterior(
        posterior,
        x_obs=x_obs,
        reference_samples=reference,
        theta_test=theta_test,
        x_test=x_test,
        n_posterior_samples=config.scores.posterior_samples,
        n_sbc_samples=config.scores.sbc_samples,
        seed=seed,
    )
    scores.attrs.update(
        level=name, simplification=np.nan if level is None else level.simplification
    )
    if level is not None:
        emulator = Emulator.load(layout.level(name).emulator)
        scores["emulator_nll"] = ("test_pair", -emulator.log_prob(x_test, theta_test))
    save_scores(scores, layout.level(name).scores)


def score(
    config: StudyConfig,
    layout: StudyLayout,
    client: Client,
    levels: list[FidelityLevel | None],
    progress: bool = False,
) -> list[StageOutcome]:
    """Score each posterior against the exact posterior and held-out true-simulator pairs."""
    return _run_levels(
        "score",
        config,
        layout,
        client,
        list(levels),
        outputs=lambda name: [layout.level(name).scores],
        task=_score_task,
        arguments=lambda level: (config, layout, level),
        progress=progress,
    )
