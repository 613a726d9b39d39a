"""``emustudy submit --target`` and ``--plan``: the control searches as chains of SLURM jobs.

Neither search knows its levels in advance: the bisection picks its next level from the scores
of the last (:mod:`pipelines.adaptive`), and a plan picks its anchors from the emulator errors
(:mod:`pipelines.plan`). So each chain is driven by a small **control job** (the profile's
``report`` resources, no Dask cluster) that reads the study folder, submits the next job array,
one task per level running the same pipeline scripts as ``emustudy submit``, and then itself
again, ``afterok`` that array. When nothing is left it writes the result and ends::

    --target  simulate -> control -> probes-1 [each sweep's next level] -> control
              -> probes-2 -> control ... -> control: report/adaptive.json
    --plan    simulate -> control -> emulators [every level: train-emulator, emulate]
              -> control -> anchors [the anchors: infer, score] -> control: report/plan.json

Each array's scripts are in ``slurm/<array>/<level>.sh``, its logs in
``slurm/logs/<array>-<job>_<task>.out``, the control jobs' in ``slurm/logs/control-*.out``.

Every control job decides from what the study folder holds, not from what an earlier job
said, so a chain stopped by a failed task or ``emustudy cancel`` resumes where it stopped when
submitted again, and levels scored by any earlier run count as probes or anchors for free.
Every submission is appended to ``slurm/jobs.json``; the waiting control job is its
``control`` unit, which ``emustudy cancel`` stops with the rest. A control job submits from
inside SLURM, which needs ``sbatch`` on the compute nodes (true on most clusters).
"""

from __future__ import annotations

import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from rich.console import Console

from cluster.jobs import SubmitResources, sbatch, sbatch_script, write_script
from pipelines.adaptive import (
    adaptive_result,
    next_probe,
    print_adaptive,
    probes_on_disk,
    require_sweeps,
    sweep_levels,
    write_adaptive,
)
from pipelines.config import StudyConfig
from pipelines.layout import StudyLayout
from pipelines.plan import (
    CHEAP_STAGES,
    StudyPlan,
    candidate_levels,
    choose_anchors,
    plan_anchors,
    plan_table,
    predict_plan,
)
from pipelines.submissions import (
    ACTIVE,
    append_submission,
    read_submissions,
    unit_jobs,
    unit_states,
)
from pipelines.submit import (
    reopen_unmeasured_errors,
    submit_resources,
    submittable_states,
    write_pipeline_scripts,
)
from simulators.errors import EmustudyError

__all__ = ["Mode", "ControlStep", "submit_control", "control_step"]

Mode = Literal["target", "plan"]


@dataclass(frozen=True)
class ControlStep:
    """What one submission or control job did: the jobs it submitted (None: none) and, when
    the chain ended, its result file."""

    mode: Mode
    simulate: str | None = None
    array: str | None = None
    array_name: str | None = None
    level_names: tuple[str, ...] = ()
    control: str | None = None
    result: Path | None = None
    lines: list[str] = field(default_factory=list)


def _folder(layout: StudyLayout) -> Path:
    return layout.root / "slurm"


def _control_script(
    config: StudyConfig,
    resources: SubmitResources,
    layout: StudyLayout,
    mode: Mode,
    options: list[str],
) -> Path:
    """``slurm/control-<mode>.sbatch``: one step of the chain, run by the SLURM job."""
    config_file = _folder(layout) / "study.yaml"
    argv = [sys.executable, "-m", "pipelines.cli", "control-step", str(config_file)]
    body = [
        f"# One step of `emustudy submit --{mode}`: submit the next job array, or finish.",
        shlex.join([*argv, "--mode", mode, *options]),
    ]
    return write_script(
        _folder(layout) / f"control-{mode}.sbatch",
        sbatch_script(
            f"{config.name}-control",
            resources.report,
            body,
            log_file=_folder(layout) / "logs" / f"control-{mode}-%j.out",
            workdir=layout.root,
        ),
    )


def _done(config: StudyConfig, layout: StudyLayout) -> tuple[bool, dict[str, set[str]]]:
    """Whether the true-simulator stores are done, and each level's done stages.

    Raises
    ------
    StaleOutputError
        If outputs of a different config are in the study folder.
    """
    states = submittable_states(config, layout)
    simulated = all(s.state == "done" for s in states if s.level is None)
    by_level: dict[str, list] = {}
    for s in states:
        if s.level is not None:
            by_level.setdefault(s.level.split("/", 1)[0], []).append(s)
    done = {
        name: {
            stage
            for stage in {s.stage for s in found}
            if all(s.state == "done" for s in found if s.stage == stage)
        }
        for name, found in by_level.items()
    }
    return simulated, done


def _options(mode: Mode, profile: str, anchors: int, error: str, began: float) -> list[str]:
    options = ["--profile", profile, "--began", f"{began:.0f}"]
    if mode == "plan":
        options += ["--anchors", str(anchors), "--error", error]
    return options


def submit_control(
    config: StudyConfig,
    *,
    mode: Mode,
    profile: str,
    profiles_file: Path | None = None,
    anchors: int = 4,
    error: str = "auto",
) -> ControlStep:
    """Start a ``--target`` or ``--plan`` chain: the simulations (if not done), then a control
    job, which runs the rest.

    Raises
    ------
    ConfigError
        ``--target`` without a sweep, or a bad ``anchors`` (before anything is submitted).
    StaleOutputError
        If outputs of a different config are in the study folder.
    EmustudyError
        If jobs of an earlier submission of the study are still queued or running.
    """
    resources = submit_resources(profile, profiles_file)
    if mode == "target":
        require_sweeps(config, "emustudy submit --target")
    else:
        candidates = {level.name: 0.0 for level in candidate_levels(config)}
        choose_anchors(candidates, [], anchors)  # refuses a bad count here, not in a job
    layout = StudyLayout(config.study_dir.resolve())
    config = config.model_copy(update={"output_dir": config.output_dir.resolve()})
    jobs = unit_jobs(read_submissions(layout))
    states = unit_states(jobs)
    active = {unit: jobs[unit] for unit, state in states.items() if state in ACTIVE}
    if active:
        listed = ", ".join(f"{unit} {job} {states[unit]}" for unit, job in sorted(active.items()))
        raise EmustudyError(
            f"study {layout.root.name!r} has jobs in SLURM ({listed}); follow them with "
            "`emustudy status CONFIG`, or stop them with `emustudy cancel CONFIG` first"
        )
    simulated, _ = _done(config, layout)
    scripts = write_pipeline_scripts(config, resources, levels=[])
    simulate = None if simulated else sbatch(scripts["simulate"])
    began = time.time()
    control_file = _control_script(
        config, resources, layout, mode, _options(mode, profile, anchors, error, began)
    )
    control = sbatch(control_file, after_ok=[simulate] if simulate else [])
    step = ControlStep(mode, simulate=simulate, control=control)
    _record(layout, profile, step)
    return step


def control_step(
    config: StudyConfig,
    *,
    mode: Mode,
    profile: str,
    began: float,
    anchors: int = 4,
    error: str = "auto",
) -> ControlStep:
    """One control job: submit the chain's next array and control job, or write its result."""
    resources = submit_resources(profile, config.cluster.profiles_file)
    layout = StudyLayout(config.study_dir.resolve())
    _, done = _done(config, layout)
    if mode == "target":
        todo, stages, array = _next_probes(config, layout), None, f"probes-{_round(layout)}"
    else:
        reopen_unmeasured_errors(config, layout, done)  # a --target probe left it out
        cheap = [
            level.name
            for level in candidate_levels(config)
            if not {"train-emulator", "emulate"} <= done.get(level.name, set())
        ]
        if cheap:
            todo, stages, array = cheap, CHEAP_STAGES, "emulators"
        else:
            chosen, _, _ = plan_anchors(config, layout, anchors, error)
            todo = [name for name in chosen if "score" not in done.get(name, set())]
            stages, array = None, "anchors"
    if not todo:
        return _finish(config, layout, mode, anchors, error, time.time() - began)
    scripts = write_pipeline_scripts(
        config, resources, todo, done, stages=stages, array=array, emulator_error=mode != "target"
    )
    array_id = sbatch(scripts[array])
    options = _options(mode, profile, anchors, error, began)
    control = sbatch(_control_script(config, resources, layout, mode, options), after_ok=[array_id])
    step = ControlStep(
        mode, array=array_id, array_name=array, level_names=tuple(todo), control=control
    )
    _record(layout, profile, step)
    return step


def _round(layout: StudyLayout) -> int:
    """The number of the bisection's next round: its arrays are ``probes-1``, ``probes-2``..."""
    arrays = [str(record.get("array", "")) for record in read_submissions(layout)]
    return 1 + sum(1 for array in arrays if array.startswith("probes"))


def _next_probes(config: StudyConfig, layout: StudyLayout) -> list[str]:
    """Each sweep's next level of the bisection (sweeps are searched side by side)."""
    todo = []
    for sweep in config.sweeps:
        names = sweep_levels(config, sweep.name)
        known = probes_on_disk(config, layout, sweep.name)
        i = next_probe(len(names), {k: p.verdict for k, p in known.items()})
        if i is not None:
            todo.append(names[i])
    return todo


def _finish(
    config: StudyConfig,
    layout: StudyLayout,
    mode: Mode,
    anchors: int,
    error: str,
    seconds: float,
) -> ControlStep:
    """The chain's result, written as ``emustudy run --target`` or ``plan`` writes it."""
    console = Console(width=160)
    if mode == "target":
        found = adaptive_result(config, layout)
        path = write_adaptive(found, layout, seconds)
        with console.capture() as captured:
            print_adaptive(console, found, config)
    else:
        chosen, errors, metric = plan_anchors(config, layout, anchors, error)
        plan: StudyPlan = predict_plan(config, layout, errors, metric, chosen, seconds)
        path = layout.report / "plan.json"
        with console.capture() as captured:
            console.print(plan_table(plan))
            for sweep, at in plan.crossings.items():
                console.print(
                    f"sweep {sweep}: {plan.score} predicted to cross {plan.target:g} at "
                    f"{at['knob']} = {at['crossing']:.4g}, interval [{at['low']:.4g}, "
                    f"{at['high']:.4g}]",
                    highlight=False,
                )
    return ControlStep(mode, result=path, lines=captured.get().splitlines())


def _record(layout: StudyLayout, profile: str, step: ControlStep) -> None:
    """Append the step's jobs to ``slurm/jobs.json`` (the array as the level units' jobs)."""
    submitted = [job for job in (step.simulate, step.array, step.control) if job]
    append_submission(
        layout,
        {
            "submitted": datetime.now(UTC).isoformat(timespec="seconds"),
            "profile": profile,
            "mode": step.mode,
            "simulate": step.simulate,
            "levels": step.array,
            "array": step.array_name,
            "level_names": list(step.level_names),
            "report": None,
            "control": step.control,
            "job_ids": submitted,
            "after": [],
            "replaced": [],
            "submitted_by": os.environ.get("USER") or str(os.getuid()),
        },
    )
