"""The record of a study's SLURM submissions and what SLURM says became of their jobs.

``<study>/slurm/jobs.json`` holds every ``emustudy submit`` of the study, oldest first; a new
submission is appended, none is overwritten::

    {"submissions": [{"submitted": ..., "simulate": "12", "levels": "13",
                      "level_names": ["full", "ceiling"], "report": "14", ...}, ...]}

A study is made of *units*, one SLURM job each: ``simulate``, one task of the level array per
level (``level:<name>``, job ``<array id>_<index>``) and ``report``. A unit's job is the one of
the newest submission that ran it, so a resumed study is followed (and cancelled) through the
jobs that replaced the ones that ended.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cluster.jobs import job_states
from pipelines.layout import StudyLayout

__all__ = [
    "ACTIVE",
    "SIMULATE",
    "REPORT",
    "CONTROL",
    "level_unit",
    "jobs_file",
    "read_submissions",
    "append_submission",
    "unit_jobs",
    "unit_states",
]

# SLURM states of a job that may still run (or runs now).
ACTIVE = frozenset(
    {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "RESIZING", "SUSPENDED"}
)
SIMULATE, REPORT, CONTROL = "simulate", "report", "control"


def level_unit(name: str) -> str:
    """The unit of level ``name`` (its task of the level array)."""
    return f"level:{name}"


def jobs_file(layout: StudyLayout) -> Path:
    """Where the submissions of the study are recorded."""
    return layout.root / "slurm" / "jobs.json"


def read_submissions(layout: StudyLayout) -> list[dict[str, object]]:
    """Every submission of the study, oldest first (empty if it was never submitted).

    A ``jobs.json`` from before submissions were appended (one record) reads as one submission.
    """
    path = jobs_file(layout)
    if not path.exists():
        return []
    found = json.loads(path.read_text())
    if "submissions" not in found:
        return [found] if found else []
    return list(found["submissions"])


def append_submission(layout: StudyLayout, record: dict[str, object]) -> None:
    """Add ``record`` after the earlier submissions (atomic write)."""
    path = jobs_file(layout)
    submissions = [*read_submissions(layout), record]
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps({"submissions": submissions}, indent=2))
    os.replace(temporary, path)


def unit_jobs(submissions: list[dict[str, object]]) -> dict[str, str]:
    """Each unit's job: the one of the newest submission that ran it.

    Returns
    -------
    dict
        Unit (``simulate``, ``level:<name>``, ``report``, ``control``: the next step of an
        ``emustudy submit --target`` or ``--plan`` chain) to job id (``<array id>_<index>`` for
        a level).
    """
    jobs: dict[str, str] = {}
    for record in submissions:
        if record.get("simulate"):
            jobs[SIMULATE] = str(record["simulate"])
        array = record.get("levels")
        names = record.get("level_names") or []
        if array:
            for index, name in enumerate(names):  # type: ignore[arg-type]
                jobs[level_unit(name)] = f"{array}_{index}"
        if record.get("report"):
            jobs[REPORT] = str(record["report"])
        if record.get("control"):
            jobs[CONTROL] = str(record["control"])
    return jobs


def unit_states(jobs: dict[str, str]) -> dict[str, str | None]:
    """SLURM's state of each unit's job; None where SLURM no longer knows the job.

    A level's task that has not started yet may be listed under the array's own id only.

    Raises
    ------
    SlurmError
        If SLURM does not answer.
    """
    wanted = sorted(set(jobs.values()))  # the tasks themselves: one may end alone (scancel)
    states = job_states(wanted) if wanted else {}
    found: dict[str, str | None] = {}
    for unit, job in jobs.items():
        state = states.get(job)
        if state is None and "_" in job:
            state = states.get(job.split("_")[0])
        found[unit] = state
    return found
