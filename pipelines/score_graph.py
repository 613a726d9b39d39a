"""The score stage as many Dask tasks, so that every worker scores, whatever the units.

One unit (a level with one inference method) becomes this graph; every unit's graph is submitted
at once, so the scheduler spreads the blocks of all units over all workers::

    inputs ─┬─ observations (replicate r, a block of observations) ─┐
            ├─ pairs (replicate r, a block of test pairs) ───────────┴─ finish r ─┐
            ├─ extras (misspecification tests, the stand-in's NLL) ───────────────┴─ write
            └─ degrees (the misspecification sweep, where the study has one)

Blocks hold ``scores.tasks.observations`` observations or ``scores.tasks.pairs`` test pairs.

Each task runs under :func:`cluster.task_clock.measured`, so a unit's cost is the sum of its
tasks' core seconds, never the time they spent queued behind other units' tasks. Progress counts
blocks (with the time left), not units. The scores are those of
:func:`pipelines.level_scoring.score_level` for any block sizes and workers: seeds follow the
observations and test pairs (:mod:`inference.score_blocks`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from distributed import Client, Future, as_completed

from cluster.execute import close_worker_children
from cluster.progress import progress_bar
from cluster.task_clock import Measured, measured
from inference.calibration import finite_pairs
from inference.score_blocks import SEED_PAIRS, block_ranges, score_observations, score_pairs
from inference.scores import finish_scores, scored_pairs
from pipelines import degrees
from pipelines.layout import StudyLayout
from pipelines.level_scoring import (
    LevelScoring,
    ScoringInputs,
    level_extras,
    replicate_context,
    scoring_inputs,
    write_level_scores,
)
from simulators.base import Simulator
from simulators.store import open_store

__all__ = ["UnitScore", "run_scoring", "submit_unit", "tasks_overlap"]


@dataclass
class UnitScore:
    """One unit's scoring: its tasks, and once they are done what they cost.

    Attributes
    ----------
    name : str
    tasks : list of Future
        Every task of the unit; its last ones (``write`` and ``degrees``) end it.
    ends : list of Future
    measured : list of Measured
        Each finished task's cost and worker-side times (values dropped).
    submitted : float
        ``time.perf_counter()`` when its graph was submitted.
    wall_s : float
        Seconds from submission until its last task ended (queueing included).
    """

    name: str
    tasks: list[Future]
    ends: list[Future]
    measured: list[Measured[None]] = field(default_factory=list)
    submitted: float = 0.0
    wall_s: float = 0.0

    @property
    def cpu_s(self) -> float:
        """Core seconds of its tasks together (see :mod:`cluster.task_clock`)."""
        return float(sum(task.cpu_s for task in self.measured))


def _observations(
    job: LevelScoring,
    layout: StudyLayout,
    simulator: Simulator,
    guarded: Simulator,
    inputs: ScoringInputs,
    replicate: int,
    start: int,
    stop: int,
) -> Any:
    context = replicate_context(job, layout, simulator, guarded, inputs, replicate)
    return score_observations(context, start, stop)


def _pairs(
    job: LevelScoring,
    layout: StudyLayout,
    simulator: Simulator,
    inputs: ScoringInputs,
    replicate: int,
    start: int,
    stop: int,
) -> Any:
    context = replicate_context(job, layout, simulator, simulator, inputs, replicate)
    return score_pairs(context, start, stop)


def _finish(
    job: LevelScoring,
    layout: StudyLayout,
    simulator: Simulator,
    guarded: Simulator,
    inputs: ScoringInputs,
    replicate: int,
    observations: list[Any],
    pairs: list[Any],
) -> Any:
    context = replicate_context(job, layout, simulator, guarded, inputs, replicate)
    return finish_scores(context, observations, pairs)


def _degrees(job: degrees.DegreeScoring, scoring: LevelScoring) -> None:
    degrees.score_degrees(job, scoring.likelihood.context())


def _n_pairs(job: LevelScoring, layout: StudyLayout) -> int:
    """How many test pairs each replicate scores (finite ones, capped for MCMC methods)."""
    ds = open_store(layout.simulations("test"))
    theta, _, _ = finite_pairs(ds["theta"].values, ds["x"].values)
    return scored_pairs(len(theta), job.max_test_pairs)


def _count_observations(inputs: Measured[ScoringInputs]) -> int:
    return len(inputs.value.x_obs)


def _submitter(client: Client, job: LevelScoring) -> Callable[..., Future]:
    """``submit(label, task, *args)``: a measured task of ``job``'s unit, named after both."""
    tag = job.name.replace("/", "-")

    def submit(label: str, task: Callable[..., Any], *args: Any) -> Future:
        return client.submit(measured, label, task, *args, key=f"score-{label}-{tag}-{_token()}")

    return submit


def submit_unit(
    client: Client,
    job: LevelScoring,
    degree_job: degrees.DegreeScoring | None,
    layout: StudyLayout,
    simulator: Simulator,
    guarded: Simulator | Future,
    inputs: Future | None = None,
) -> UnitScore:
    """Submit one unit's scoring graph (see the module doc) and return its futures.

    ``inputs``: its inputs task, when already submitted. The blocks of observations are planned
    once it has read them (observations with non-finite values are dropped), so this waits for
    that task, not for the others.
    """
    submitted = time.perf_counter()
    submit = _submitter(client, job)
    if inputs is None:
        inputs = submit("inputs", scoring_inputs, job, layout, simulator)
    count = client.submit(_count_observations, inputs, key=f"score-count-{_token()}")
    n_obs, n_pairs = int(count.result()), _n_pairs(job, layout)
    tasks, finished = [inputs], []
    for replicate in range(job.replicates):
        at = (job, layout, simulator, guarded, inputs, replicate)  # what every block reads
        observations = [
            submit("observations", _observations, *at, a, b)
            for a, b in block_ranges(n_obs, job.scores.tasks.observations)
        ]
        pairs = [
            submit("pairs", _pairs, job, layout, simulator, inputs, replicate, a, b)
            for a, b in block_ranges(n_pairs, job.scores.tasks.pairs, SEED_PAIRS)
        ]
        finish = submit("finish", _finish, *at, observations, pairs)
        tasks += [*observations, *pairs, finish]
        finished.append(finish)
    extras = submit("extras", level_extras, job, layout, inputs)
    write = submit("write", write_level_scores, job, layout, inputs, finished, extras)
    ends = [write]
    if degree_job is not None:
        ends.append(submit("degrees", _degrees, degree_job, job))
    tasks += [extras, *ends]
    return UnitScore(job.name, tasks, ends, submitted=submitted)


_counter = iter(range(1 << 62))


def _token() -> str:
    return f"{time.time_ns():x}-{next(_counter)}"


def run_scoring(
    client: Client,
    jobs: list[tuple[LevelScoring, degrees.DegreeScoring | None]],
    layout: StudyLayout,
    simulator: Simulator,
    guarded: Callable[[str], Simulator],
    on_done: Callable[[UnitScore], None],
    progress: bool = False,
) -> list[UnitScore]:
    """Score every unit of ``jobs`` as one pool of tasks; call ``on_done`` as each unit ends.

    ``guarded(name)`` is the guarded simulator for unit ``name``'s predictive check. Progress
    counts every task of every unit (blocks of observations and test pairs, their joins), with
    the time left.
    """
    inputs = [
        _submitter(client, job)("inputs", scoring_inputs, job, layout, simulator) for job, _ in jobs
    ]
    # one copy of each unit's guarded simulator per worker, so its blocks there reuse one child
    # process for their predictive checks (a child is matched by the very simulator object)
    checks = [client.scatter(guarded(job.name), broadcast=True, hash=False) for job, _ in jobs]
    scores = [
        submit_unit(client, job, degree_job, layout, simulator, checked, first)
        for (job, degree_job), checked, first in zip(jobs, checks, inputs, strict=True)
    ]
    owner = {task.key: unit for unit in scores for task in unit.tasks}
    remaining = {unit.name: len(unit.tasks) for unit in scores}
    total = sum(remaining.values())
    label = "blocks (observations, test pairs) of the units"
    with progress_bar("score", label, progress and total > 0) as bar:
        task_id = bar.add_task("score", total=total)
        for future in as_completed([task for unit in scores for task in unit.tasks]):
            unit = owner[future.key]
            result: Measured[Any] = future.result()
            unit.measured.append(_without_value(result))
            remaining[unit.name] -= 1
            if not remaining[unit.name]:
                unit.wall_s = time.perf_counter() - unit.submitted
                on_done(unit)
            bar.update(task_id, advance=1)
    client.run(close_worker_children)
    return scores


def _without_value(result: Measured[Any]) -> Measured[None]:
    """The record of a task without its (possibly large) value."""
    return Measured(
        value=None,
        cpu_s=result.cpu_s,
        wall_s=result.wall_s,
        began=result.began,
        ended=result.ended,
        worker=result.worker,
        clock=result.clock,
        label=result.label,
    )


def tasks_overlap(a: list[Measured[None]], b: list[Measured[None]]) -> bool:
    """Whether a task of ``a`` and one of ``b`` ran at the same time on different workers."""
    return any(
        x.worker != y.worker and x.began < y.ended and y.began < x.ended for x in a for y in b
    )
