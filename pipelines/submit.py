"""Run a study through SLURM: pipeline scripts per level, sbatch with dependencies, cancel.

``submit`` writes, in ``<study>/slurm/``::

    study.yaml           the config as submitted (what every job runs)
    simulate.sbatch      the true-simulator campaigns
    levels/<name>.sh     the pipeline of one fidelity level (or the ceiling): its stages in order
    levels.sbatch        a job array over the levels, after simulate succeeded (afterok)
    report.sbatch        the report, after every level succeeded (afterok on the array)
    jobs.json            every submission's job ids (see :mod:`pipelines.submissions`)
    logs/                SLURM output of every job

The scripts are plain bash, meant to be read and edited; work that is already done is skipped by
the stage commands themselves. Submitting again after a failure or ``scancel`` submits only what
ended unfinished, after the jobs still queued or running, and resumes from what was done.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from cluster.jobs import SubmitResources, sbatch, sbatch_script, scancel, write_script
from cluster.profiles import load_profile
from pipelines.config import StudyConfig
from pipelines.finetune import finetune_owners
from pipelines.layout import CEILING, StudyLayout
from pipelines.stages import emulator_error_done
from pipelines.state import CEILING_STAGES, LEVEL_STAGES, level_names, stage_states
from pipelines.study import report_done
from pipelines.submissions import (
    ACTIVE,
    CONTROL,
    REPORT,
    SIMULATE,
    append_submission,
    level_unit,
    read_submissions,
    unit_jobs,
    unit_states,
)
from simulators.errors import EmustudyError, StaleOutputError

__all__ = [
    "Submission",
    "submit_study",
    "submittable_states",
    "write_pipeline_scripts",
    "reopen_unmeasured_errors",
    "cancel_study",
    "read_jobs",
]


@dataclass(frozen=True)
class Submission:
    """What :func:`submit_study` submitted (job ids are None for work that needs no new job).

    ``after`` holds the jobs of earlier submissions, still queued or running, that the new ones
    wait for; ``replaced`` those cancelled because they waited on a job that ended unfinished.
    """

    folder: Path
    simulate: str | None
    levels: str | None
    level_names: tuple[str, ...]
    report: str | None
    after: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()

    @property
    def job_ids(self) -> list[str]:
        return [job for job in (self.simulate, self.levels, self.report) if job]


def _folder(layout: StudyLayout) -> Path:
    return layout.root / "slurm"


def read_jobs(layout: StudyLayout) -> dict[str, object]:
    """The last submission's record (``slurm/jobs.json``), or an empty dict."""
    submissions = read_submissions(layout)
    return submissions[-1] if submissions else {}


def submit_resources(profile: str, profiles_file: Path | None) -> SubmitResources:
    """The per-stage resources of a SLURM profile (its ``submit:`` block)."""
    found = load_profile(profile, profiles_file)
    if found.kind != "slurm":
        raise EmustudyError(
            f"cluster profile {profile!r} is a {found.kind} profile; `emustudy submit` needs a "
            "SLURM profile, e.g. --profile slurm (see cluster/profiles.yaml)"
        )
    return found.submit


_CPUS = "__SLURM_CPUS__"


def _command(config_file: Path, stage: str, *options: str, cluster: bool = True) -> str:
    """One stage command; with ``cluster`` it runs a local Dask cluster inside the allocation."""
    argv = [sys.executable, "-m", "pipelines.cli", stage, str(config_file), *options, "--quiet"]
    if cluster:  # --force: `emustudy submit` checked the budgets; a job's node is another one
        argv += ["--profile", "local", "--workers", _CPUS, "--force"]
    return shlex.join(argv).replace(_CPUS, '"${SLURM_CPUS_PER_TASK:-1}"')


def write_pipeline_scripts(
    config: StudyConfig,
    resources: SubmitResources,
    levels: list[str] | None = None,
    done: dict[str, set[str]] | None = None,
    *,
    stages: Sequence[str] | None = None,
    array: str = "levels",
    emulator_error: bool = True,
) -> dict[str, Path]:
    """Write the study's sbatch files and per-level pipeline scripts; return them by role.

    Parameters
    ----------
    config : StudyConfig
    resources : SubmitResources
    levels : list of str, optional
        Levels the array runs (default: all, then the ceiling; none: no array is written).
    done : dict, optional
        Stages already done per level: their commands are written commented out, which saves
        a job the start-up of a stage that has nothing left to do.
    stages : sequence of str, optional
        The stages each level's script runs (default: all of a level's; ``emustudy submit
        --plan`` first runs the cheap ones).
    array : str
        Name of the job array: its sbatch file is ``<array>.sbatch``, its scripts in ``<array>/``.
    emulator_error : bool
        Whether the levels' emulate stage measures their emulator error (``submit --target``'s
        probes do not).
    """
    done = done or {}
    layout = StudyLayout(config.study_dir.resolve())
    folder, logs = _folder(layout), _folder(layout) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    submitted = config.model_copy(update={"output_dir": config.output_dir.resolve()})
    config_file = folder / "study.yaml"
    config_file.write_text(yaml.safe_dump(submitted.model_dump(mode="json"), sort_keys=False))
    levels = array_levels(config) if levels is None else levels

    scripts = {}
    body = [
        "# The true-simulator campaigns (train, test and observation stores).",
        _command(config_file, "simulate"),
    ]
    scripts["simulate"] = write_script(
        folder / "simulate.sbatch",
        sbatch_script(
            f"{config.name}-simulate",
            resources.simulate,
            body,
            log_file=logs / "simulate-%j.out",
            workdir=layout.root,
        ),
    )
    for name in levels:
        script = _level_script(
            config, config_file, name, done.get(name, set()), stages, emulator_error
        )
        scripts[f"level:{name}"] = write_script(folder / array / f"{name}.sh", script)
    if levels:  # an empty array is no job
        scripts[array] = _write_array(config, resources, folder, array, levels, layout.root)
    scripts["report"] = write_script(
        folder / "report.sbatch",
        sbatch_script(
            f"{config.name}-report",
            resources.report,
            [_command(config_file, "report", cluster=False)],
            log_file=logs / "report-%j.out",
            workdir=layout.root,
        ),
    )
    return scripts


def _write_array(
    config: StudyConfig,
    resources: SubmitResources,
    folder: Path,
    array: str,
    levels: list[str],
    workdir: Path,
) -> Path:
    """Write ``<array>.sbatch``: task i runs the script of ``levels[i]``."""
    body = [
        f"LEVELS=({' '.join(shlex.quote(name) for name in levels)})",
        'LEVEL="${LEVELS[$SLURM_ARRAY_TASK_ID]}"',
        'echo "level $LEVEL on $(hostname), job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
        f'bash {shlex.quote(str(folder / array))}/"$LEVEL".sh',
    ]
    return write_script(
        folder / f"{array}.sbatch",
        sbatch_script(
            f"{config.name}-{array}",
            resources.level,
            body,
            log_file=folder / "logs" / f"{array}-%A_%a.out",
            array=f"0-{len(levels) - 1}",
            workdir=workdir,
        ),
    )


def _level_script(
    config: StudyConfig,
    config_file: Path,
    name: str,
    done: set[str],
    stages: Sequence[str] | None = None,
    emulator_error: bool = True,
) -> str:
    """The pipeline script of one level: its stages (all, or those of ``stages``), those done
    when submitted commented out."""
    level = next((lvl for lvl in config.ladder if lvl.name == name), None)
    about = (
        "the ceiling: every inference method on true-simulator data at the same budget"
        if level is None
        else f"level {name!r}, simplification {level.simplification:g}: {level.description}"
    )
    lines = ["#!/bin/bash", f"# Pipeline of {about}", "set -euo pipefail"]
    wanted = CEILING_STAGES if name == CEILING else LEVEL_STAGES
    wanted = [stage for stage in wanted if stages is None or stage in stages]
    lines += _stage_lines(config_file, ["--level", name], wanted, done, emulator_error)
    tuned = [tuned for tuned, base in finetune_owners(config).items() if base == name]
    if tuned and stages is None:  # they fine-tune this level's posteriors: in its task, after it
        lines.append(f"# finetune levels of {name!r}: {', '.join(tuned)}")
        lines += _stage_lines(config_file, [f"--level={t}" for t in tuned], CEILING_STAGES, done)
    return "\n".join(lines)


def _stage_lines(
    config_file: Path,
    levels: list[str],
    stages: Sequence[str],
    done: set[str],
    emulator_error: bool = True,
) -> list[str]:
    """The stages not done in one ``emustudy level`` process (each process costs seconds of
    imports and a Dask start), after a commented-out command for each stage done."""
    lines = [
        f"# done when submitted: {_command(config_file, stage, *levels)}"
        for stage in stages
        if stage in done
    ]
    todo = [f"--stage={stage}" for stage in stages if stage not in done]
    if "--stage=emulate" in todo and not emulator_error:
        todo.append("--no-emulator-error")
    if todo:
        lines.append(_command(config_file, "level", *levels, *todo))
    return lines


def submittable_states(config: StudyConfig, layout: StudyLayout) -> list:
    """Every stage's state, refusing a study folder that holds another config's outputs.

    Raises
    ------
    StaleOutputError
        If outputs of a different config are in the study folder (nothing may be submitted).
    """
    states = stage_states(config, layout, counts=False)
    stale = [s for s in states if s.state == "stale"]
    if stale:
        where = ", ".join(f"{s.stage}{f' ({s.level})' if s.level else ''}" for s in stale)
        raise StaleOutputError(
            f"study folder {layout.root} holds outputs of a different config ({where}); nothing "
            "was submitted. Run the affected stage with --replace-stale to set them aside, "
            "restore the config that made them, or give the study another name"
        )
    return states


def _unfinished(config: StudyConfig, layout: StudyLayout) -> tuple[set[str], dict[str, set[str]]]:
    """Units whose outputs are not all done for this config, and the stages done per level.

    Raises
    ------
    StaleOutputError
        If outputs of a different config are in the study folder.
    """
    states = submittable_states(config, layout)
    units = {SIMULATE} if any(s.state != "done" for s in states if s.level is None) else set()
    # a level's states include those of each inference method (``full/nle``): a stage is done
    # for the level only when it is done for every method
    owners = finetune_owners(config)  # a finetune level runs in its base's task
    mine: dict[str, list] = {name: [] for name in array_levels(config)}
    for s in states:
        level = _level_of(s.level)
        if level is not None:
            mine[owners.get(level, level)].append(s)
    done: dict[str, set[str]] = {}
    for name, level_states in mine.items():
        for stage in {s.stage for s in level_states}:
            if all(s.state == "done" for s in level_states if s.stage == stage):
                done.setdefault(name, set()).add(stage)
    unmeasured = reopen_unmeasured_errors(config, layout, done)
    for name, level_states in mine.items():
        if any(s.state != "done" for s in level_states) or name in unmeasured:
            units.add(level_unit(name))
    if units or not report_done(config, layout):
        units.add(REPORT)
    return units, done


def reopen_unmeasured_errors(
    config: StudyConfig, layout: StudyLayout, done: dict[str, set[str]]
) -> set[str]:
    """Take ``emulate`` out of ``done`` for levels emulated without their emulator error (a
    ``--target`` probe leaves it out), so their script runs emulate again, which measures only
    the error; return those levels."""
    unmeasured = set()
    for level in config.ladder:
        emulated = done.get(level.name, set())
        if "emulate" in emulated and not emulator_error_done(config, layout, level):
            emulated.discard("emulate")
            unmeasured.add(level.name)
    return unmeasured


def array_levels(config: StudyConfig) -> list[str]:
    """The levels with a task of their own in the level array (finetune levels run in their
    base level's task), then the ceiling."""
    owners = finetune_owners(config)
    return [name for name in level_names(config) if name not in owners]


def _level_of(unit: str | None) -> str | None:
    return None if unit is None else unit.split("/", 1)[0]


def _to_submit(unfinished: set[str], active: dict[str, str], names: list[str]) -> list[str]:
    """Unfinished units without a live job, and those whose job waits on one of them.

    A job that waits (afterok) on a unit being submitted again can never start: SLURM would
    kill it once the ended job's failure is seen. It is submitted again after the new one.
    """
    units = [SIMULATE] if SIMULATE in unfinished and SIMULATE not in active else []
    for name in names:
        unit = level_unit(name)
        if unit in unfinished and (unit not in active or units[:1] == [SIMULATE]):
            units.append(unit)
    if REPORT in unfinished and (REPORT not in active or units):
        units.append(REPORT)
    return units


def _refuse(layout: StudyLayout, active: dict[str, str], states: dict[str, str | None]) -> None:
    listed = ", ".join(f"{job} {states[unit]}" for unit, job in sorted(active.items()))
    raise EmustudyError(
        f"study {layout.root.name!r} is already submitted and has jobs in SLURM ({listed}); "
        "follow it with `emustudy status CONFIG`, or stop it with `emustudy cancel CONFIG` "
        "before submitting again"
    )


def submit_study(
    config: StudyConfig, *, profile: str, profiles_file: Path | None = None
) -> Submission:
    """Submit what is not done yet: simulate, then the level array (afterok), then the report.

    Jobs of earlier submissions that are still queued or running are kept and waited for;
    units whose job ended without finishing (cancelled, failed, timed out, or no longer known
    to SLURM) are submitted again, and resume from the outputs their stages left.

    Raises
    ------
    StaleOutputError
        If outputs of a different config are in the study folder (nothing is submitted).
    EmustudyError
        If every unfinished stage has a job of an earlier submission still queued or running.
    """
    resources = submit_resources(profile, profiles_file)
    layout = StudyLayout(config.study_dir.resolve())
    config = config.model_copy(update={"output_dir": config.output_dir.resolve()})
    unfinished, done = _unfinished(config, layout)
    jobs = unit_jobs(read_submissions(layout))
    states = unit_states(jobs)
    active = {unit: jobs[unit] for unit, state in states.items() if state in ACTIVE}
    names = array_levels(config)
    units = _to_submit(unfinished, active, names)
    if CONTROL in active:  # a --target or --plan chain submits levels of its own
        _refuse(layout, active, states)
    if not units:
        if active:
            _refuse(layout, active, states)
        return Submission(_folder(layout), None, None, (), None)
    todo = [name for name in names if level_unit(name) in units]
    scripts = write_pipeline_scripts(config, resources, todo or None, done)
    replaced = tuple(active[unit] for unit in units if unit in active)
    scancel(replaced)
    kept = {unit: job for unit, job in active.items() if unit not in units}
    simulate_id = sbatch(scripts["simulate"]) if SIMULATE in units else None
    first = [simulate_id] if simulate_id else [kept[SIMULATE]] if SIMULATE in kept else []
    levels_id = sbatch(scripts["levels"], after_ok=first) if todo else None
    levels = [levels_id] if levels_id else []
    levels += [kept[level_unit(name)] for name in names if level_unit(name) in kept]
    report_id = sbatch(scripts["report"], after_ok=levels or first) if REPORT in units else None
    after = tuple(job for job in [*first, *levels] if job in kept.values())
    submission = Submission(
        _folder(layout), simulate_id, levels_id, tuple(todo), report_id, after, replaced
    )
    record = {
        "submitted": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": profile,
        "simulate": simulate_id,
        "levels": levels_id,
        "level_names": todo,
        "report": report_id,
        "job_ids": submission.job_ids,
        "after": list(after),
        "replaced": list(replaced),
        "submitted_by": os.environ.get("USER") or str(os.getuid()),
    }
    append_submission(layout, record)
    return submission


def cancel_study(config: StudyConfig) -> list[str]:
    """Cancel the study's jobs that SLURM still runs or holds; return their ids."""
    layout = StudyLayout(config.study_dir.resolve())
    jobs = unit_jobs(read_submissions(layout))
    if not jobs:
        raise EmustudyError(
            f"nothing to cancel: study {config.name!r} has no submission in {_folder(layout)}"
        )
    states = unit_states(jobs)
    active = sorted(
        {jobs[unit].split("_")[0] for unit, state in states.items() if state in ACTIVE}, key=int
    )
    scancel(active)
    return active
