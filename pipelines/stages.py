"""The stages of a study: simulate, then per level train-emulator, emulate, infer, score.

Each stage skips work whose outputs exist and match the config's digest, refuses to overwrite
outputs of another config, and runs independent levels side by side as Dask tasks.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
from distributed import Client, as_completed

from cluster.campaign import run_campaign
from cluster.guarded import GuardedSimulator
from cluster.lock import StoreLock
from cluster.progress import progress_bar
from cluster.task_clock import Measured, measured
from cluster.task_gate import task_gate
from emulators.fidelity import AnyLevel, FidelityLevel, FinetuneLevel, PerturbedLevel
from inference.methods import get_method
from inference.score_table import SCORING_VERSION
from inference.simulation_reference import MIN_SPREAD, MemberCheck, Run, check_members, member_seed
from pipelines import degrees, scoring
from pipelines.config import StudyConfig, digest
from pipelines.error_graph import run_emulator_error
from pipelines.finetune import (
    FINETUNE_VERSION,
    finetune_replicates,
    finetune_settings,
    is_finetune,
    require_base_posteriors,
)
from pipelines.layout import CEILING, StudyLayout, level_name
from pipelines.level_scoring import LevelScoring
from pipelines.manifest import Manifest
from pipelines.score_graph import UnitScore, run_scoring
from pipelines.timings import (
    StageOutcome,
    read_member_costs,
    record_timings,
    write_member_costs,
)
from pipelines.truth_settings import file_digest
from pipelines.units import (
    LikelihoodSource,
    Unit,
    likelihood_source,
    stage_seed,
    study_simulator,
    units,
)
from simulators.errors import StoreError
from simulators.registry import make_simulator

__all__ = [
    "ROLES",
    "simulation_key",
    "simulation_roles",
    "unit_likelihood",
    "StageOutcome",
    "stage_seed",
    "simulate",
    "train_emulators",
    "emulate",
    "emulator_error_done",
    "infer",
    "score",
]

logger = logging.getLogger("emustudy.pipelines")

ROLES = ("train", "test", "observations", "reference")
"""Every true-simulator store a study may hold (see :func:`simulation_roles`)."""


def _finish(
    layout: StudyLayout, manifest: Manifest, key: str, outcome: StageOutcome
) -> StageOutcome:
    """Record what a unit of a stage cost, then mark it done.

    Each unit's seconds are written as it finishes, not at the end of its stage: a run stopped
    part-way (Ctrl-C, a SLURM time limit) and resumed would otherwise skip the units it had
    finished and lose their costs from the report.
    """
    record_timings(layout, [outcome])
    manifest.mark_done(outcome.stage, key)
    return outcome


def _budget(config: StudyConfig, role: str) -> int:
    if role.startswith("misspecified"):
        assert config.misspecification is not None
        return config.misspecification.observations
    return {
        "train": config.budgets.train,
        "test": config.budgets.test,
        "observations": config.n_observations,
        "reference": config.reference_budget,
    }[role]


def simulation_roles(config: StudyConfig) -> tuple[str, ...]:
    """The true-simulator campaigns this study runs: train and test; the observations unless
    they come from a file; the simulation reference's own campaign where it has one."""
    roles = ["train", "test"]
    if config.observations is None:
        roles.append("observations")
    if config.reference_kind == "simulation":
        roles.append("reference")
    if config.misspecification is not None:
        roles += degrees.degree_roles(config.misspecification)
    return tuple(roles)


def simulation_digest(config: StudyConfig) -> str:
    """Digest of everything the true-simulator stores depend on."""
    return digest(config.seed, config.simulator, config.budgets.model_dump(exclude={"emulated"}))


def observation_parts(config: StudyConfig) -> list[str]:
    """What depends on observed data from a file adds its content to its digest (nothing for
    simulated observations, whose store is already in :func:`simulation_digest`)."""
    return [] if config.observations is None else [file_digest(config.observations.file)]


def simulation_key(config: StudyConfig, role: str) -> str:
    """What one true-simulator store depends on. The reference's own campaign (often the
    costliest) depends only on the seed, the simulator, its budget and the chunking."""
    if role == "reference":
        chunk = config.budgets.chunk_size
        return digest(config.seed, config.simulator, config.reference_budget, chunk, role)
    if role.startswith("misspecified"):
        sweep = config.misspecification
        assert sweep is not None
        made = degrees.degree_simulator(study_simulator(config), sweep, role)
        return digest(
            config.seed, made.name, made.settings, sweep.observations, config.budgets.chunk_size
        )
    return digest(simulation_digest(config), role)


def simulate(
    config: StudyConfig, layout: StudyLayout, client: Client, progress: bool
) -> list[StageOutcome]:
    """Run the true simulator for the train, test and observation sets."""
    simulator = make_simulator(config.simulator.name, **config.simulator.settings)
    manifest = Manifest(layout.manifest)
    outcomes = []
    for role in simulation_roles(config):
        began, began_cpu = time.perf_counter(), time.process_time()
        store, key = layout.simulations(role), simulation_key(config, role)
        if manifest.is_done(f"simulate-{role}", key, [store]):
            outcomes.append(StageOutcome(f"simulate-{role}", None, False, 0.0))
            continue
        store.parent.mkdir(parents=True, exist_ok=True)
        misspecified = role.startswith("misspecified") and config.misspecification is not None
        run_campaign(
            degrees.degree_simulator(simulator, config.misspecification, role)
            if misspecified
            else simulator,
            store,
            n_samples=_budget(config, role),
            # every degree of a misspecification sweep at the same theta0 and seeds
            campaign_seed=stage_seed(
                config.seed, "campaign", "misspecified" if misspecified else role
            ),
            chunk_size=min(config.budgets.chunk_size, _budget(config, role)),
            client=client,
            attrs={"study": config.name, "role": role, "fidelity_level": "simulator"},
            progress=progress,
            settings=config.campaign,
        )
        wall, cpu = time.perf_counter() - began, _campaign_cpu(store, began_cpu)
        ran = StageOutcome(f"simulate-{role}", None, True, wall, cpu)
        outcomes.append(_finish(layout, manifest, key, ran))
    return outcomes


def _method_key(config: StudyConfig, method: str) -> str:
    """Digest of what one method's posteriors depend on besides their data."""
    settings = config.inference.method_settings
    relevant = get_method(method).relevant_settings(settings)
    options = settings.options.get(method, {})
    # a method trained on the observations depends on how they are made
    observed = None
    if get_method(method).needs_observations:
        observed = [config.scores.observation_model, *observation_parts(config)]
        observed = observed[0] if len(observed) == 1 else observed
    return digest(method, relevant, options, config.inference.replicates, observed)


def _level_digests(
    config: StudyConfig, level: AnyLevel | None, method: str = "npe"
) -> dict[str, str]:
    simulations = simulation_digest(config)
    scoring_parts = (config.scores.result_settings(), SCORING_VERSION, *observation_parts(config))
    if config.misspecification is not None:
        scoring_parts += (config.misspecification,)
    if level is None:
        infer_key = digest(simulations, config.budgets.emulated_runs, _method_key(config, method))
        return {"infer": infer_key, "score": digest(infer_key, *scoring_parts)}
    if isinstance(level, FinetuneLevel):  # the base's posteriors, trained on true runs
        base = next(other for other in config.ladder if other.name == level.base)
        infer_key = digest(_level_digests(config, base)["infer"], level, FINETUNE_VERSION)
        return {"infer": infer_key, "score": digest(infer_key, *scoring_parts)}
    emulator_key = _stand_in_digest(config, level, simulations)
    emulate_key = digest(emulator_key, config.budgets.emulated_runs, config.budgets.chunk_size)
    infer_key = digest(emulate_key, _method_key(config, method))
    return {
        "train-emulator": emulator_key,
        "emulator-error": digest(emulator_key, _ERROR_SETTINGS),
        "emulate": emulate_key,
        "infer": infer_key,
        "score": digest(infer_key, *scoring_parts),
    }


_ERROR_SETTINGS = {"n_theta": 200, "n_draws": 20, "version": 1, "scoring": SCORING_VERSION}
"""How many held-out thetas and draws per theta measure each level's error, and with which
scoring code (its C2ST)."""


def _stand_in_digest(config: StudyConfig, level: AnyLevel, simulations: str) -> str:
    """Digest of what realises a level: trained emulator, reduced simulator or perturbation."""
    if isinstance(level, FidelityLevel):
        return digest(simulations, level.emulator, stage_seed(config.seed, "emulator", level.name))
    if isinstance(level, PerturbedLevel):
        base = next(other for other in config.ladder if other.name == level.base)
        return digest(_stand_in_digest(config, base, simulations), level)
    return digest(simulations, level)


def _run_levels(
    stage: str,
    config: StudyConfig,
    layout: StudyLayout,
    client: Client,
    levels: list[Unit],
    outputs: Callable[[str], list[Path]],
    task: Callable[..., object],
    arguments: Callable[[Unit], tuple],
    progress: bool,
) -> list[StageOutcome]:
    """Run ``task`` for every unit (level and method) whose ``stage`` is not done.

    Each task is submitted when a worker thread is free (:mod:`cluster.task_gate`), and marked
    done as soon as it finishes.
    """
    outcomes, todo, futures = [], deque(), {}
    for unit in levels:
        name = unit.name
        manifest = Manifest(layout.level(name).manifest)
        key = _level_digests(config, unit.level, unit.method)[stage]
        if manifest.is_done(stage, key, outputs(name)):
            outcomes.append(StageOutcome(stage, name, False, 0.0))
            continue
        layout.level(name).method_root.mkdir(parents=True, exist_ok=True)
        todo.append((name, manifest, key, arguments(unit)))
    gate, running = task_gate(client), as_completed()

    def submit_while_free() -> None:
        while todo:
            name, manifest, key, args = todo[0]
            # waits for a free thread only when none of this stage's tasks is left to collect
            submit = gate.try_submit if running.count() else gate.submit
            task_key = f"{stage}-{name.replace('/', '-')}-{key}"
            future = submit(measured, stage, task, *args, key=task_key, pure=False)
            if future is None:
                return
            todo.popleft()
            futures[future] = (name, manifest, key)
            running.add(future)

    unit_name = "units (level x method)" if stage == "infer" else "levels"
    with progress_bar(stage, unit_name, progress and bool(todo)) as bar:
        task_id = bar.add_task(stage, total=len(todo))
        submit_while_free()
        for future in running:
            name, manifest, key = futures[future]
            cost: Measured[object] = future.result()
            ran = StageOutcome(stage, name, True, cost.wall_s, cost.cpu_s)
            outcomes.append(_finish(layout, manifest, key, ran))
            bar.update(task_id, advance=1)
            submit_while_free()
    return outcomes


def _train_emulator_task(
    store: Path, level: AnyLevel, out_dir: Path, seed: int, base_checkpoint: Path | None
) -> None:
    if isinstance(level, FidelityLevel):
        # Emulator code imports Lightning (about 5 s): only the stages that need it pay that.
        from emulators.train import train_emulator

        train_emulator(store, level, out_dir, seed=seed, progress=False)
    else:  # reduced and perturbed levels have nothing to train: record what stands in
        from emulators.levels import write_stand_in

        write_stand_in(level, out_dir / "emulator.pt", base_checkpoint=base_checkpoint)


def train_emulators(
    config: StudyConfig,
    layout: StudyLayout,
    client: Client,
    levels: list[FidelityLevel],
    progress: bool = False,
) -> list[StageOutcome]:
    """Train each level's emulator on the true-simulator training store.

    Reduced and perturbed levels train nothing: their ``emulator.pt`` records what stands in.
    """
    return _run_levels(
        "train-emulator",
        config,
        layout,
        client,
        [Unit(level, "npe") for level in levels],
        outputs=lambda name: [layout.level(name).emulator],
        task=_train_emulator_task,
        arguments=lambda unit: (
            layout.simulations("train"),
            unit.level,
            layout.level(unit.level.name).root,
            stage_seed(config.seed, "emulator", unit.level.name),
            layout.level(unit.level.base).emulator
            if isinstance(unit.level, PerturbedLevel)
            else None,
        ),
        progress=progress,
    )


def emulate(
    config: StudyConfig,
    layout: StudyLayout,
    client: Client,
    levels: list[FidelityLevel],
    progress: bool,
    emulator_error: bool = True,
) -> list[StageOutcome]:
    """Run each level's stand-in as a simulator over the training parameters, then measure it.

    The measured error against held-out true-simulator pairs (:mod:`inference.emulator_error`)
    goes to each level's ``emulator_error.zarr``, the levels side by side as Dask tasks. Without
    ``emulator_error`` it is left for a later run (``emustudy run --target`` needs only the
    posteriors' scores; ``plan`` and the report's trends measure what is missing).
    """
    from emulators.levels import load_stand_in  # imports Lightning: see _train_emulator_task

    outcomes = []
    for level in levels:
        paths, began, began_cpu = layout.level(level.name), time.perf_counter(), time.process_time()
        manifest, key = Manifest(paths.manifest), _level_digests(config, level)["emulate"]
        if manifest.is_done("emulate", key, [paths.emulated]):
            outcomes.append(StageOutcome("emulate", level.name, False, 0.0))
            continue
        run_campaign(
            load_stand_in(paths.emulator),
            paths.emulated,
            n_samples=config.budgets.emulated_runs,
            # the training campaign's seed: each level emulates at the very same parameters
            campaign_seed=stage_seed(config.seed, "campaign", "train"),
            chunk_size=min(config.budgets.chunk_size, config.budgets.emulated_runs),
            client=client,
            attrs={"study": config.name, "role": "emulated", "fidelity_level": level.name},
            progress=progress,
            settings=config.campaign,
        )
        wall = time.perf_counter() - began
        cpu = _campaign_cpu(paths.emulated, began_cpu)
        outcomes.append(
            _finish(layout, manifest, key, StageOutcome("emulate", level.name, True, wall, cpu))
        )
    # Part of the emulate stage (its own manifest entry, so it is measured once, and its own
    # cost in timings.json): every level's blocks of held-out thetas as one pool of Dask tasks.
    if not emulator_error:
        return outcomes
    return outcomes + _emulator_error(config, layout, client, levels, progress)


def emulator_error_done(config: StudyConfig, layout: StudyLayout, level: FidelityLevel) -> bool:
    """Whether ``level``'s emulator error is measured for this config."""
    key = _level_digests(config, level)["emulator-error"]
    paths = layout.level(level.name)
    return Manifest(paths.manifest).is_done("emulator-error", key, [paths.emulator_error])


def _emulator_error(
    config: StudyConfig,
    layout: StudyLayout,
    client: Client,
    levels: list[FidelityLevel],
    progress: bool,
) -> list[StageOutcome]:
    """Measure each level's stand-in against held-out true-simulator pairs
    (:mod:`pipelines.error_graph`), skipping levels whose measurement is done."""
    outcomes, jobs, marks = [], [], {}
    for level in levels:
        manifest = Manifest(layout.level(level.name).manifest)
        key = _level_digests(config, level)["emulator-error"]
        if manifest.is_done("emulator-error", key, [layout.level(level.name).emulator_error]):
            outcomes.append(StageOutcome("emulator-error", level.name, False, 0.0))
            continue
        seed = stage_seed(config.seed, "emulator-error", level.name)
        n_theta, n_draws = _ERROR_SETTINGS["n_theta"], _ERROR_SETTINGS["n_draws"]
        jobs.append((level.name, float(level.simplification), seed, n_theta, n_draws))
        marks[level.name] = (manifest, key)

    def done(name: str, wall: float, cpu: float) -> None:
        manifest, key = marks[name]
        ran = StageOutcome("emulator-error", name, True, wall, cpu)
        outcomes.append(_finish(layout, manifest, key, ran))

    run_emulator_error(client, config.simulator, config.campaign, layout, jobs, done, progress)
    return outcomes


def _campaign_cpu(store: Path, began_cpu: float) -> float:
    """Core seconds of a campaign that just ran into ``store``: its rows' simulator seconds
    (the ledger's ``elapsed``, each row's share of its batch) plus this process's own work."""
    from simulators.store import open_store

    elapsed = open_store(store)["elapsed"].values
    return float(np.nansum(elapsed)) + time.process_time() - began_cpu


def infer(
    config: StudyConfig,
    layout: StudyLayout,
    client: Client,
    levels: list[AnyLevel | None],
    progress: bool = False,
) -> list[StageOutcome]:
    """Train each unit's posteriors (``inference.replicates`` seeds) on its level's store.

    A unit is a level with one of the study's inference methods; the ceiling trains the same
    budget on true-simulator data. For a simulator without an exact posterior the reference
    ensemble is trained here too, its members as parallel tasks.
    """
    replicates = range(config.inference.replicates)
    prior = study_simulator(config).prior
    settings = config.inference.method_settings

    def arguments(unit: Unit) -> tuple:
        name = level_name(unit.level)
        store = layout.simulations("train") if unit.level is None else layout.level(name).emulated
        limit = config.budgets.emulated_runs if unit.level is None else None
        outs = [layout.level(unit.name).replicate_posterior(i) for i in replicates]
        seed = stage_seed(config.seed, unit.method, name)
        x_obs = None
        if get_method(unit.method).needs_observations:
            x_obs = scoring.config_observations(config, layout).x
        if isinstance(unit.level, FinetuneLevel):
            base = layout.level(unit.level.base)
            tuning = finetune_settings(settings.network, unit.level)
            bases = [base.replicate_posterior(i) for i in replicates]
            train = layout.simulations("train")
            return (tuning, prior, bases, train, unit.level.true_runs, outs, seed)
        likelihood = unit_likelihood(config, layout, unit)
        return (unit.method, settings, prior, store, limit, outs, seed, likelihood, x_obs)

    # the reference trains beside the units' posteriors (its tasks share the cluster), so the
    # workers a lone member would leave idle train posteriors meanwhile
    with ThreadPoolExecutor(1, thread_name_prefix="reference") as pool:
        reference = pool.submit(_train_reference, config, layout, client)
        trained = []
        # finetune levels start from their base level's posteriors: they train after them
        for tuned in (False, True):
            if tuned:
                require_base_posteriors(config, layout, levels, _level_digests)
            trained += _run_levels(
                "infer",
                config,
                layout,
                client,
                [u for u in units(config, list(levels)) if is_finetune(u.level) == tuned],
                outputs=lambda name: [
                    layout.level(name).replicate_posterior(i) for i in replicates
                ],
                task=finetune_replicates if tuned else scoring.train_replicates,
                arguments=arguments,
                progress=progress,
            )
        return reference.result() + trained


def _train_reference(
    config: StudyConfig, layout: StudyLayout, client: Client
) -> list[StageOutcome]:
    """Make the reference once per study, as ``reference.kind`` says: checked MCMC on the
    simulator's likelihood, the user's samples, or the simulation reference trained on its own
    campaign (nothing for an exact posterior)."""
    kind = config.reference_kind
    if kind == "exact":
        return []
    began, began_cpu = time.perf_counter(), time.thread_time()  # this thread: the driver's part
    manifest = Manifest(layout.reference / "manifest.json")
    outputs = [layout.reference_draws]
    if kind == "simulation":
        outputs = [layout.reference_checks, layout.reference_agreement]
    reference = config.reference.model_dump(exclude={"trust_threshold"})
    key = digest(
        simulation_digest(config),
        kind,
        reference,
        config.scores.result_settings(),
        SCORING_VERSION,  # its self-agreement and truth check are C2STs; members are kept
        *observation_parts(config),
    )
    if kind == "simulation":
        key = digest(key, simulation_key(config, "reference"))
    if manifest.is_done("reference", key, outputs):
        return [StageOutcome("reference", None, False, 0.0)]
    with _reference_lock(layout):  # level jobs of a SLURM array: one trains, the others wait
        if manifest.is_done("reference", key, outputs):
            return [StageOutcome("reference", None, False, 0.0)]
        worker_cpu = _make_reference(config, layout, client, kind)
        cpu = worker_cpu + time.thread_time() - began_cpu
        ran = StageOutcome("reference", None, True, time.perf_counter() - began, cpu)
        return [_finish(layout, manifest, key, ran)]


@contextmanager
def _reference_lock(layout: StudyLayout, poll_s: float = 10.0) -> Iterator[None]:
    """Hold the reference folder's lock, waiting while another live process holds it."""
    lock = StoreLock(layout.reference)
    told = False
    while True:
        try:
            lock.acquire()
            break
        except StoreError as err:
            if not told:
                logger.info("reference: waiting for another job that makes it (%s)", err)
                told = True
            time.sleep(poll_s)
    try:
        yield
    finally:
        lock.release()


def _make_reference(config: StudyConfig, layout: StudyLayout, client: Client, kind: str) -> float:
    """Make the reference of ``kind``; returns the core seconds its worker tasks spent."""
    layout.reference.mkdir(parents=True, exist_ok=True)
    worker_cpu = 0.0
    if kind == "likelihood":
        seed = stage_seed(config.seed, "reference")
        made = scoring.save_likelihood_reference
        worker_cpu = client.submit(measured, "reference", made, config, layout, seed, pure=False)
        worker_cpu = worker_cpu.result().cpu_s
    elif kind == "samples":
        scoring.save_sample_reference(config, layout)
    else:
        worker_cpu = _simulation_reference(config, layout, client)
    scoring.save_reference_truth_check(config, layout, stage_seed(config.seed, "reference-truth"))
    return worker_cpu


def _simulation_reference(config: StudyConfig, layout: StudyLayout, client: Client) -> float:
    """Train the members on the reference's own campaign as parallel tasks, retrain or drop
    those the training check flags, and measure the kept members' agreement; returns the core
    seconds of the members' training tasks."""
    settings = config.reference
    prior = study_simulator(config).prior
    seed = stage_seed(config.seed, "reference-npe")
    began, costs = time.perf_counter(), []

    def run_many(runs: list[Run]) -> list[tuple[Path, MemberCheck]]:
        outs = [layout.reference_member(member, attempt) for member, attempt in runs]
        gate = task_gate(client)
        futures = {
            gate.submit(
                measured,
                "reference-member",
                scoring.train_reference_member,
                settings.network,
                prior,
                layout.simulations("reference"),
                out,
                member_seed(seed, member, attempt),
                member,
                attempt,
                pure=False,
            ): out.name
            for out, (member, attempt) in zip(outs, runs, strict=True)
        }
        checks, spent = {}, read_member_costs(layout.reference_member_costs)
        for future in as_completed(futures):  # each member's cost kept as it finishes
            name, result = futures[future], future.result()
            checks[name], trained = result.value
            if trained or name not in spent:  # a loaded member keeps the cost of its training
                spent[name] = result.cpu_s
                write_member_costs(layout.reference_member_costs, spent)
        costs.extend(spent[out.name] for out in outs)  # members a stopped run trained too
        return [(out, checks[out.name]) for out in outs]

    logger.info(
        "reference: training %d NPE members (%s) on the %s runs of its own campaign",
        settings.members,
        settings.network.density_estimator,
        f"{config.reference_budget:,}",
    )
    kept, checks = check_members(run_many, settings.members, settings.tolerance, MIN_SPREAD)
    seconds = time.perf_counter() - began
    scoring.save_reference_checks(
        layout.reference_checks, kept, checks, config.reference_budget, seconds
    )
    statuses = [check.status for check in checks]
    logger.info(
        "reference: kept %d of %d members (%d retrained, %d dropped) in %.0f s",
        len(kept),
        settings.members,
        statuses.count("retrained"),
        statuses.count("dropped"),
        seconds,
    )
    scoring.save_reference_agreement(config, layout, stage_seed(config.seed, "reference-agreement"))
    return float(sum(costs))


def unit_likelihood(config: StudyConfig, layout: StudyLayout, unit: Unit) -> LikelihoodSource:
    """The likelihood ``unit``'s method samples, identified by the digest of the level's
    stand-in (none for the ceiling and finetune levels, which have no stand-in of their own)."""
    plain = unit.level is None or is_finetune(unit.level)
    stand_in = "" if plain else _level_digests(config, unit.level)["emulate"]
    return likelihood_source(config, layout, unit, stand_in)


def _scoring_job(config: StudyConfig, layout: StudyLayout, unit: Unit) -> LevelScoring:
    name = level_name(unit.level)
    job = LevelScoring(
        name=unit.name,
        level=name,
        simplification=float("nan") if unit.level is None else float(unit.level.simplification),
        method=unit.method,
        replicates=config.inference.replicates,
        reference=config.reference_kind,
        observation_file=None if config.observations is None else config.observations.file,
        scores=config.scores,
        training_store=layout.simulations("train")
        if unit.level is None
        else layout.level(name).emulated,
        training_limit=config.budgets.emulated_runs if unit.level is None else None,
        has_stand_in=unit.level is not None,
        likelihood=unit_likelihood(config, layout, unit),
        seed=stage_seed(config.seed, "score", name)
        if unit.method == "npe"
        else stage_seed(config.seed, "score", name, unit.method),
        observation_seed=stage_seed(config.seed, "observation-model"),
        reference_seed=stage_seed(config.seed, "reference"),
    )
    if isinstance(unit.level, FinetuneLevel):  # no stand-in of its own: its base's store
        base = layout.level(unit.level.base).emulated
        return replace(job, has_stand_in=False, training_store=base)
    return job


def _degree_job(
    config: StudyConfig, layout: StudyLayout, unit: Unit
) -> degrees.DegreeScoring | None:
    """What scoring ``unit`` at every degree of the study's misspecification sweep reads."""
    sweep = config.misspecification
    if sweep is None:
        return None
    paths = layout.level(unit.name)
    return degrees.DegreeScoring(
        sweep=sweep,
        observation_model=config.scores.observation_model,
        simulator=(config.simulator.name, json.dumps(config.simulator.settings, sort_keys=True)),
        stores=tuple(layout.simulations(role) for role in degrees.degree_roles(sweep)),
        test_store=layout.simulations("test"),
        posteriors=tuple(paths.replicate_posterior(i) for i in range(config.inference.replicates)),
        out=paths.degree_scores,
        seed=stage_seed(config.seed, "degrees", unit.name),
        observation_seed=stage_seed(config.seed, "observation-model", "degrees"),
    )


def score(
    config: StudyConfig,
    layout: StudyLayout,
    client: Client,
    levels: list[AnyLevel | None],
    progress: bool = False,
) -> list[StageOutcome]:
    """Score each unit against the reference posterior and held-out true-simulator pairs.

    Then write each method's trend (``trend.zarr`` for NPE, ``trend-<method>.zarr``): each score
    against the levels' measured emulator error.
    """
    simulator = study_simulator(config)
    outcomes, jobs, marks = [], [], {}
    for unit in units(config, list(levels)):
        manifest = Manifest(layout.level(unit.name).manifest)
        key = _level_digests(config, unit.level, unit.method)["score"]
        outputs = [layout.level(unit.name).scores]
        if config.misspecification:
            outputs.append(layout.level(unit.name).degree_scores)
        if manifest.is_done("score", key, outputs):
            outcomes.append(StageOutcome("score", unit.name, False, 0.0))
            continue
        layout.level(unit.name).method_root.mkdir(parents=True, exist_ok=True)
        jobs.append((_scoring_job(config, layout, unit), _degree_job(config, layout, unit)))
        marks[unit.name] = (manifest, key)

    def guarded(name: str) -> GuardedSimulator:
        return GuardedSimulator(
            simulator,
            timeout_s=config.campaign.timeout_s,
            retries=config.campaign.retries,
            what=f"posterior predictive check of {name!r}",
            reuse_child=True,  # one child per worker for the unit's blocks, closed at the end
        )

    def done(unit: UnitScore) -> None:
        manifest, key = marks[unit.name]
        ran = StageOutcome("score", unit.name, True, unit.wall_s, unit.cpu_s)
        outcomes.append(_finish(layout, manifest, key, ran))

    run_scoring(client, jobs, layout, simulator, guarded, done, progress)
    names = [CEILING] + [level.name for level in config.ladder]
    for method in config.inference.methods:
        if any(outcome.ran for outcome in outcomes) or not layout.trend_of(method).exists():
            scoring.save_trend(layout, names, method)
    return outcomes
