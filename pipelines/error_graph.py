"""Emulator-error measurement as many Dask tasks: blocks of held-out thetas, then one join.

Per level, the held-out thetas (:data:`N_THETA` of the test store) are split into blocks of
:data:`THETAS_PER_TASK`; each block draws ``n_draws`` from the level's stand-in and from the true
simulator (guarded: killable, retried) at its thetas (:func:`inference.emulator_error.draw_block`,
``2 x 8 x THETAS_PER_TASK x n_draws x d`` bytes; each worker keeps one child process per
simulator for the level's blocks), and a join computes the level's NLL, C2ST, MMD
and moment errors and writes ``emulator_error.zarr``. The draws are seeded by their index, so the
blocks give the values one call gives. Every task is measured (:mod:`cluster.task_clock`), so the
level's cost is its tasks' core seconds; the bar counts blocks and shows the time left.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from distributed import Client, Future, as_completed

from cluster.execute import close_worker_children
from cluster.guarded import GuardedSimulator
from cluster.progress import progress_bar
from cluster.settings import CampaignSettings
from cluster.task_clock import measured
from inference.emulator_error import (
    DrawBlock,
    check_stand_in,
    draw_block,
    error_dataset,
    held_out,
    save_emulator_error,
)
from inference.score_blocks import block_ranges
from pipelines.config import SimulatorConfig
from pipelines.layout import StudyLayout
from simulators.base import Simulator
from simulators.registry import make_simulator

__all__ = ["THETAS_PER_TASK", "run_emulator_error"]

THETAS_PER_TASK = 50
"""Held-out thetas per block task (not part of any digest: the values do not depend on it)."""


def _block(
    stand_in: Simulator,
    truth: Simulator,
    layout: StudyLayout,
    n_theta: int,
    n_draws: int,
    seed: int,
    start: int,
    stop: int,
) -> DrawBlock:
    theta, _, outputs = held_out(layout.simulations("test"), n_theta)
    check_stand_in(stand_in, outputs, theta.shape[1], layout.simulations("test"))
    return draw_block(stand_in, truth, theta, n_draws, seed, start, stop)


def _join(
    stand_in: Simulator,
    truth: str,
    layout: StudyLayout,
    level: str,
    simplification: float,
    n_theta: int,
    n_draws: int,
    seed: int,
    blocks: list[DrawBlock],
) -> None:
    test = layout.simulations("test")
    theta, x, outputs = held_out(test, n_theta)
    error = error_dataset(
        stand_in,
        truth,
        theta,
        x,
        blocks,
        outputs,
        n_draws,
        seed,
        level=level,
        simplification=simplification,
        test_store=test,
    )
    save_emulator_error(error, layout.level(level).emulator_error)


def _guarded(
    simulator: SimulatorConfig, campaign: CampaignSettings, emulator: Path, level: str
) -> tuple[Simulator, Simulator]:
    """The level's stand-in and the true simulator, each run in a killable, retried child
    process that a worker keeps for the level's blocks (one start-up per worker, not per block)."""
    from emulators.levels import load_stand_in  # imports Lightning: the emulate stage has it

    guard = {"timeout_s": campaign.timeout_s, "retries": campaign.retries, "reuse_child": True}
    what = f"emulator error of level {level!r}"
    stand_in = GuardedSimulator(load_stand_in(emulator), what=f"{what} (stand-in)", **guard)
    truth = make_simulator(simulator.name, **simulator.settings)
    return stand_in, GuardedSimulator(truth, what=what, **guard)


def run_emulator_error(
    client: Client,
    simulator: SimulatorConfig,
    campaign: CampaignSettings,
    layout: StudyLayout,
    jobs: list[tuple[str, float, int, int, int]],
    on_done: Callable[[str, float, float], None],
    progress: bool = False,
) -> None:
    """Measure every level of ``jobs`` (``(level, simplification, seed, n_theta, n_draws)``)
    as one pool of tasks; ``on_done(level, wall_s, cpu_s)`` as each level's join ends."""
    futures: dict[str, list[Future]] = {}
    began = time.perf_counter()
    for level, simplification, seed, n_theta, n_draws in jobs:
        n = len(held_out(layout.simulations("test"), n_theta)[0])
        stand_in, truth = _guarded(simulator, campaign, layout.level(level).emulator, level)
        # one copy per worker: its blocks there find the child processes it keeps (a child is
        # matched by the very simulator object)
        pair = client.scatter([stand_in, truth], broadcast=True, hash=False)
        drawn = (*pair, layout, n_theta, n_draws, seed)
        blocks = [
            client.submit(measured, "error-draws", _block, *drawn, a, b)
            for a, b in block_ranges(n, THETAS_PER_TASK)
        ]
        join = client.submit(
            measured,
            "error-join",
            _join,
            pair[0],
            truth.name,
            layout,
            level,
            simplification,
            n_theta,
            n_draws,
            seed,
            blocks,
        )
        futures[level] = [*blocks, join]
    owner = {future: level for level, tasks in futures.items() for future in tasks}
    cpu = dict.fromkeys(futures, 0.0)
    left = {level: len(tasks) for level, tasks in futures.items()}
    total = sum(left.values())
    with progress_bar("emulator error", "blocks of held-out thetas", progress and total > 0) as bar:
        task_id = bar.add_task("emulator error", total=total)
        for future in as_completed(list(owner)):
            level = owner[future]
            cpu[level] += future.result().cpu_s
            left[level] -= 1
            if not left[level]:
                on_done(level, time.perf_counter() - began, cpu[level])
            bar.update(task_id, advance=1)
    client.run(close_worker_children)
