"""``emustudy status``: each stage of each level as its files and SLURM's job states show it."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from pathlib import Path

from cluster.jobs import FINISHED_BAD, SlurmError, job_states
from cluster.lock import process_alive
from pipelines.config import StudyConfig
from pipelines.finetune import finetune_owners
from pipelines.layout import StudyLayout
from pipelines.state import stage_states
from pipelines.study import report_done
from pipelines.submissions import (
    ACTIVE,
    REPORT,
    SIMULATE,
    level_unit,
    read_submissions,
    unit_jobs,
    unit_states,
)

__all__ = ["StageStatus", "StudyStatus", "study_status"]

_WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "SUSPENDED"}
_RUNNING = {"RUNNING", "COMPLETING"}


@dataclass(frozen=True)
class StageStatus:
    """One row of ``emustudy status``.

    ``state`` is done, damaged (done, but chunk files of its store are damaged or missing:
    ``damage`` names them), running, pending, cancelled, failed, stale (made by another config),
    partial or not started; ``job`` and ``job_state`` are SLURM's, when the stage was submitted
    (``job_state`` is None once SLURM has forgotten the job).
    """

    stage: str
    level: str | None
    state: str
    job: str | None = None
    job_state: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    damage: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class StudyStatus:
    """Every stage of a study, the running campaigns' dashboards, and the last submission."""

    rows: list[StageStatus]
    dashboards: list[dict[str, object]]
    submission: dict[str, object]
    slurm_error: str | None = None

    @property
    def all_done(self) -> bool:
        return all(row.state == "done" for row in self.rows)

    @property
    def resumable(self) -> bool:
        """Submitted, not done, and a job ended unfinished or none is queued or running."""
        states = {row.state for row in self.rows}
        return (
            bool(self.submission)
            and self.slurm_error is None
            and not self.all_done
            and bool(states & {"cancelled", "failed"} or not states & {"running", "pending"})
        )

    @property
    def damage(self) -> list[str]:
        """Every damaged chunk file of the study's stores, one line each."""
        return [line for row in self.rows for line in row.damage]

    def repair_hint(self, config_file: Path | str) -> str | None:
        """``damaged: N chunks`` and the command that recomputes them, or None."""
        rows = [row for row in self.rows if row.state == "damaged"]
        if not rows:
            return None
        where = ", ".join(f"{row.stage}{f' ({row.level})' if row.level else ''}" for row in rows)
        return (
            f"damaged: {len(self.damage)} chunks ({where}); `emustudy run {config_file}` "
            "recomputes just those chunks (the same bytes: the seeds are per sample)"
        )

    def next_step(self, config_file: Path | str) -> str | None:
        """What to do when jobs of the study ended before their stages were done, else None."""
        if not self.resumable:
            return None
        ended = sorted(
            f"{row.job} {row.job_state or 'no longer known to SLURM'}"
            for row in self.rows
            if row.job and row.state in ("cancelled", "failed", "partial", "not started")
        )
        profile = self.submission.get("profile") or "PROFILE"
        return (
            f"SLURM jobs of the study ended before their stages were done "
            f"({', '.join(dict.fromkeys(ended)) or 'none left'}; logs in the study's slurm/logs/"
            f"). Run `emustudy submit {config_file} --profile {profile}` again to resume: done "
            "stages are kept and only the rest is submitted"
        )


def _alive(board: dict[str, object]) -> bool:
    """Whether the process that published a dashboard still runs (when this host can tell)."""
    pid = board.get("pid")
    if board.get("host") == socket.gethostname() and isinstance(pid, int):
        return process_alive(pid)
    job = board.get("slurm_job_id")
    if job:
        try:
            return bool(set(job_states([str(job)]).values()) & ACTIVE)
        except SlurmError:
            return True
    return True


def _dashboards(layout: StudyLayout) -> list[dict[str, object]]:
    """Published dashboards, less those of processes killed before they could withdraw them."""
    found = []
    for path in sorted((layout.root / "dashboards").glob("*.json")):
        try:
            board = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _alive(board):
            found.append(board)
    return found


def _unit(stage: str, level: str | None) -> str:
    if stage == "report":
        return REPORT
    return SIMULATE if level is None else level_unit(level)


def _shown(state: str, job_state: str | None) -> str:
    if state in ("done", "stale", "damaged"):
        return state
    if job_state in _WAITING:
        return "pending"
    if job_state is not None and job_state.startswith("CANCELLED"):
        return "cancelled"
    if job_state in FINISHED_BAD or job_state == "COMPLETED":
        return "failed"
    return "partial" if state == "partial" else "not started"


def study_status(config: StudyConfig) -> StudyStatus:
    """Where each stage of the study stands.

    A stage is *done* when its outputs exist and were made by this config; otherwise the SLURM
    job of the newest ``emustudy submit`` that ran it says whether it is pending, running,
    cancelled or failed. In a running level job, the first stage not done is running and the
    later ones pending.
    """
    layout = StudyLayout(config.study_dir.resolve())
    submissions = read_submissions(layout)
    jobs = unit_jobs(submissions)
    slurm_error = None
    try:
        states = unit_states(jobs)
    except SlurmError as err:
        states, slurm_error = {}, str(err)
    rows: list[StageStatus] = []
    running_seen: set[str] = set()
    files = stage_states(config, layout)
    owners = finetune_owners(config)
    files_report = "done" if report_done(config, layout) else "missing"
    for item in [*files, None]:
        stage, level, state, counts, damage = (
            ("report", None, files_report, {}, [])
            if item is None
            else (item.stage, item.level, item.state, item.counts, item.damage)
        )
        unit = _unit(stage, owners.get(level or "", level))  # finetune: in its base's task
        job, job_state = jobs.get(unit), states.get(unit)
        shown = _shown(state, job_state)
        if state not in ("done", "stale", "damaged") and job_state in _RUNNING:
            shown = "pending" if unit in running_seen else "running"
            running_seen.add(unit)
        rows.append(StageStatus(stage, level, shown, job, job_state, counts, damage))
    return StudyStatus(
        rows, _dashboards(layout), submissions[-1] if submissions else {}, slurm_error
    )
