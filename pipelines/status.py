"""``emustudy status``: each stage of each level as its files and SLURM's job states show it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from cluster.jobs import FINISHED_BAD, SlurmError, job_states
from pipelines.config import StudyConfig
from pipelines.layout import StudyLayout
from pipelines.state import stage_states
from pipelines.study import report_done
from pipelines.submit import read_jobs

__all__ = ["StageStatus", "StudyStatus", "study_status"]

_WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "SUSPENDED"}
_RUNNING = {"RUNNING", "COMPLETING"}


@dataclass(frozen=True)
class StageStatus:
    """One row of ``emustudy status``.

    ``state`` is done, running, pending, failed, stale (made by another config), partial or
    not started; ``job`` and ``job_state`` are SLURM's, when the stage was submitted.
    """

    stage: str
    level: str | None
    state: str
    job: str | None = None
    job_state: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


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


def _dashboards(layout: StudyLayout) -> list[dict[str, object]]:
    found = []
    for path in sorted((layout.root / "dashboards").glob("*.json")):
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return found


def _job_of(stage: str, level: str | None, submission: dict[str, object]) -> str | None:
    if level is None and stage.startswith("simulate"):
        return submission.get("simulate")  # type: ignore[return-value]
    if stage == "report":
        return submission.get("report")  # type: ignore[return-value]
    names = submission.get("level_names") or []
    array = submission.get("levels")
    if array and level in names:
        return f"{array}_{names.index(level)}"  # type: ignore[union-attr]
    return None


def study_status(config: StudyConfig) -> StudyStatus:
    """Where each stage of the study stands.

    A stage is *done* when its outputs exist and were made by this config; otherwise its SLURM
    job (if ``emustudy submit`` started one) says whether it is pending, running or failed. In a
    running level job, the first stage not done is running and the later ones pending.
    """
    layout = StudyLayout(config.study_dir.resolve())
    submission = read_jobs(layout)
    ids = [str(job) for job in submission.get("job_ids", [])]  # type: ignore[union-attr]
    slurm_error = None
    try:
        states = job_states(ids) if ids else {}
    except SlurmError as err:
        states, slurm_error = {}, str(err)
    rows: list[StageStatus] = []
    running_seen: set[str | None] = set()
    files = stage_states(config, layout)
    files_report = "done" if report_done(config, layout) else "missing"
    for item in [*files, None]:
        stage, level, state, counts = (
            ("report", None, files_report, {})
            if item is None
            else (item.stage, item.level, item.state, item.counts)
        )
        job = _job_of(stage, level, submission)
        job_state = states.get(job) if job else None
        if job and job_state is None and "_" in job:
            job_state = states.get(job.split("_")[0])
        shown = state
        if state not in ("done", "stale"):
            key = (level, job)
            if job_state in _RUNNING:
                shown = "pending" if key in running_seen else "running"
                running_seen.add(key)
            elif job_state in _WAITING:
                shown = "pending"
            elif job_state in FINISHED_BAD or job_state == "COMPLETED":
                shown = "failed"
            else:
                shown = "partial" if state == "partial" else "not started"
        rows.append(StageStatus(stage, level, shown, job, job_state, counts))
    return StudyStatus(rows, _dashboards(layout), submission, slurm_error)
