"""Run a study through SLURM: pipeline scripts per level, sbatch with dependencies, cancel.

``submit`` writes, in ``<study>/slurm/``::

    study.yaml           the config as submitted (what every job runs)
    simulate.sbatch      the true-simulator campaigns
    levels/<name>.sh     the pipeline of one fidelity level (or the ceiling): its stages in order
    levels.sbatch        a job array over the levels, after simulate succeeded (afterok)
    report.sbatch        the report, after every level succeeded (afterok on the array)
    jobs.json            the job ids, for ``emustudy status`` and ``emustudy cancel``
    logs/                SLURM output of every job

The scripts are plain bash, meant to be read and edited; work that is already done is skipped by
the stage commands themselves, so submitting again after a failure or ``scancel`` resumes.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import yaml

from cluster.jobs import SubmitResources, job_states, sbatch, sbatch_script, scancel, write_script
from cluster.profiles import load_profile
from pipelines.config import StudyConfig
from pipelines.layout import CEILING, StudyLayout
from pipelines.state import CEILING_STAGES, LEVEL_STAGES, level_names, stage_states
from pipelines.study import report_done
from simulators.errors import EmustudyError, StaleOutputError

__all__ = ["Submission", "submit_study", "write_pipeline_scripts", "cancel_study", "read_jobs"]

_ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED"}


@dataclass(frozen=True)
class Submission:
    """What :func:`submit_study` submitted (job ids are None for work that was already done)."""

    folder: Path
    simulate: str | None
    levels: str | None
    level_names: tuple[str, ...]
    report: str | None

    @property
    def job_ids(self) -> list[str]:
        return [job for job in (self.simulate, self.levels, self.report) if job]


def _folder(layout: StudyLayout) -> Path:
    return layout.root / "slurm"


def read_jobs(layout: StudyLayout) -> dict[str, object]:
    """The last submission's record (``slurm/jobs.json``), or an empty dict."""
    path = _folder(layout) / "jobs.json"
    return json.loads(path.read_text()) if path.exists() else {}


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
    if cluster:
        argv += ["--profile", "local", "--workers", _CPUS]
    return shlex.join(argv).replace(_CPUS, '"${SLURM_CPUS_PER_TASK:-1}"')


def write_pipeline_scripts(
    config: StudyConfig, resources: SubmitResources, levels: list[str] | None = None
) -> dict[str, Path]:
    """Write the study's sbatch files and per-level pipeline scripts; return them by role.

    Parameters
    ----------
    config : StudyConfig
    resources : SubmitResources
    levels : list of str, optional
        Levels the array runs (default: all, then the ceiling).
    """
    layout = StudyLayout(config.study_dir.resolve())
    folder, logs = _folder(layout), _folder(layout) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    submitted = config.model_copy(update={"output_dir": config.output_dir.resolve()})
    config_file = folder / "study.yaml"
    config_file.write_text(yaml.safe_dump(submitted.model_dump(mode="json"), sort_keys=False))
    levels = level_names(config) if levels is None else levels

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
        stages = CEILING_STAGES if name == CEILING else LEVEL_STAGES
        level = next((lvl for lvl in config.ladder if lvl.name == name), None)
        about = (
            "the ceiling: NPE on true-simulator data at the same budget"
            if level is None
            else f"level {name!r}, simplification {level.simplification:g}: {level.description}"
        )
        lines = ["#!/bin/bash", f"# Pipeline of {about}", "set -euo pipefail"]
        for stage in stages:
            lines.append(_command(config_file, stage, "--level", name))
        scripts[f"level:{name}"] = write_script(folder / "levels" / f"{name}.sh", "\n".join(lines))
    array_body = [
        f"LEVELS=({' '.join(shlex.quote(name) for name in levels)})",
        'LEVEL="${LEVELS[$SLURM_ARRAY_TASK_ID]}"',
        'echo "level $LEVEL on $(hostname), job ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"',
        f'bash {shlex.quote(str(folder / "levels"))}/"$LEVEL".sh',
    ]
    scripts["levels"] = write_script(
        folder / "levels.sbatch",
        sbatch_script(
            f"{config.name}-levels",
            resources.level,
            array_body,
            log_file=logs / "levels-%A_%a.out",
            array=f"0-{len(levels) - 1}",
            workdir=layout.root,
        ),
    )
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


def _refuse_if_active(layout: StudyLayout) -> None:
    record = read_jobs(layout)
    ids = [str(job) for job in record.get("job_ids", [])]
    active = {job: state for job, state in job_states(ids).items() if state in _ACTIVE}
    if active:
        listed = ", ".join(f"{job} {state}" for job, state in sorted(active.items()))
        raise EmustudyError(
            f"study {layout.root.name!r} is already submitted and has jobs in SLURM ({listed}); "
            "follow it with `emustudy status CONFIG`, or stop it with `emustudy cancel CONFIG` "
            "before submitting again"
        )


def submit_study(
    config: StudyConfig, *, profile: str, profiles_file: Path | None = None
) -> Submission:
    """Submit what is not done yet: simulate, then the level array (afterok), then the report.

    Raises
    ------
    StaleOutputError
        If outputs of a different config are in the study folder (nothing is submitted).
    EmustudyError
        If jobs of an earlier submission are still queued or running.
    """
    resources = submit_resources(profile, profiles_file)
    layout = StudyLayout(config.study_dir.resolve())
    config = config.model_copy(update={"output_dir": config.output_dir.resolve()})
    states = stage_states(config, layout, counts=False)
    stale = [s for s in states if s.state == "stale"]
    if stale:
        where = ", ".join(f"{s.stage}{f' ({s.level})' if s.level else ''}" for s in stale)
        raise StaleOutputError(
            f"study folder {layout.root} holds outputs of a different config ({where}); nothing "
            "was submitted. Run the affected stage with --replace-stale to set them aside, "
            "restore the config that made them, or give the study another name"
        )
    _refuse_if_active(layout)
    todo = [
        name
        for name in level_names(config)
        if any(s.state != "done" for s in states if s.level == name)
    ]
    simulate_needed = any(s.state != "done" for s in states if s.level is None)
    report_needed = bool(todo) or simulate_needed or not report_done(config, layout)
    scripts = write_pipeline_scripts(config, resources, todo or None)
    if not todo:
        scripts.pop("levels")
    simulate_id = sbatch(scripts["simulate"]) if simulate_needed else None
    levels_id = (
        sbatch(scripts["levels"], after_ok=[simulate_id] if simulate_id else []) if todo else None
    )
    report_id = (
        sbatch(scripts["report"], after_ok=[levels_id] if levels_id else [])
        if report_needed
        else None
    )
    submission = Submission(_folder(layout), simulate_id, levels_id, tuple(todo), report_id)
    if not submission.job_ids:
        return submission  # everything is done: keep the record of the submission that did it
    record = {
        "submitted": datetime.now(UTC).isoformat(timespec="seconds"),
        "profile": profile,
        "simulate": simulate_id,
        "levels": levels_id,
        "level_names": list(todo),
        "report": report_id,
        "job_ids": submission.job_ids,
        "submitted_by": os.environ.get("USER") or str(os.getuid()),
    }
    path = _folder(layout) / "jobs.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2))
    os.replace(temporary, path)
    return submission


def cancel_study(config: StudyConfig) -> list[str]:
    """Cancel the jobs of the last submission that SLURM still runs or holds; return their ids."""
    layout = StudyLayout(config.study_dir.resolve())
    ids = [str(job) for job in read_jobs(layout).get("job_ids", [])]
    if not ids:
        raise EmustudyError(
            f"nothing to cancel: study {config.name!r} has no submission in {_folder(layout)}"
        )
    states = job_states(ids)
    active = sorted(
        {job.split("_")[0] for job, state in states.items() if state in _ACTIVE}, key=int
    )
    scancel(active)
    return active
