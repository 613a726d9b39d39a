"""Run a whole study, stage after stage, into its study folder."""

from __future__ import annotations

import json
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from distributed import Client

from cluster.client import cluster_client
from emulators.fidelity import FidelityLevel
from pipelines import stages
from pipelines.config import StudyConfig, digest
from pipelines.finetune import is_finetune
from pipelines.layout import StudyLayout, level_name
from pipelines.manifest import Manifest
from pipelines.report import write_report
from pipelines.report_data import collect_report_data
from pipelines.stages import StageOutcome
from pipelines.state import move_stale_aside, require_done
from pipelines.units import units
from simulators.permissions import safe_umask, tighten_umask

__all__ = [
    "STAGES",
    "StudyRun",
    "report_done",
    "report_key",
    "run_stages",
    "run_study",
    "study_client",
    "write_resolved_config",
]

STAGES = ("simulate", "train-emulator", "emulate", "infer", "score", "report")
# Bump when the report's content changes, so `emustudy report` rebuilds existing reports.
REPORT_VERSION = 5
_LEVEL_STAGES = {
    "train-emulator": stages.train_emulators,
    "emulate": stages.emulate,
    "infer": stages.infer,
    "score": stages.score,
}

logger = logging.getLogger("emustudy.pipelines")


@dataclass
class StudyRun:
    """What :func:`run_study` did."""

    layout: StudyLayout
    outcomes: list[StageOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def recomputed(self) -> list[StageOutcome]:
        """The stages that ran (not skipped as done)."""
        return [o for o in self.outcomes if o.ran]

    @property
    def report(self) -> Path:
        return self.layout.report / "index.html"


def write_resolved_config(config: StudyConfig, layout: StudyLayout) -> None:
    """Save the fully resolved config as ``study.yaml`` (what actually ran)."""
    text = yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
    if layout.config.exists() and layout.config.read_text() == text:
        return
    layout.root.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=layout.root, suffix=".tmp")
    with os.fdopen(handle, "w") as file:
        file.write(text)
    os.replace(temporary, layout.config)


def report_key(config: StudyConfig, layout: StudyLayout) -> str:
    """Digest of the scores a report is built from: it changes when any level is rescored."""
    names = [unit.name for unit in units(config, [*config.ladder, None])]
    scored = [Manifest(layout.level(n).manifest).entries().get("score") for n in names]
    return digest(scored, config.report, REPORT_VERSION)


def report_done(config: StudyConfig, layout: StudyLayout) -> bool:
    """Whether ``report/`` holds the report of the study's current scores."""
    outputs = [layout.report / "index.html", layout.report / "scores.csv"]
    manifest = Manifest(layout.report / "manifest.json")
    return manifest.state("report", report_key(config, layout), outputs) == "done"


def _report(config: StudyConfig, layout: StudyLayout) -> StageOutcome:
    # The report is derived from the scores alone: rebuilding it (after a level was rescored,
    # or with another quality target) loses nothing, so it is redone rather than refused.
    if report_done(config, layout):
        return StageOutcome("report", None, False, 0.0)
    key = report_key(config, layout)
    began = time.perf_counter()
    write_report(
        collect_report_data(config, layout),
        layout.report,
        f"emustudy: {config.name}",
        quality_score=config.report.quality_score,
        quality_target=config.report.quality_target,
    )
    Manifest(layout.report / "manifest.json").mark_done("report", key)
    return StageOutcome("report", None, True, time.perf_counter() - began)


@contextmanager
def study_client(
    config: StudyConfig, layout: StudyLayout, *, profile: str | None = None, **overrides: object
) -> Iterator[Client]:
    """Start the study's Dask cluster and publish its dashboard URL in the study folder.

    ``dashboards/<host>-<pid>.json`` is what ``emustudy status`` reads to point users at running
    campaigns (several SLURM jobs of one study may run at once); it is removed when the cluster
    stops. ``profile`` and ``overrides`` replace the config's cluster settings.
    """
    settings = config.cluster
    merged = {**settings.overrides, **overrides} if profile is None else dict(overrides)
    with cluster_client(
        profile or settings.profile, profiles_file=settings.profiles_file, **merged
    ) as client:
        host = socket.gethostname()
        record = layout.root / "dashboards" / f"{host}-{os.getpid()}.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        info = {
            "url": client.dashboard_link,
            "scheduler": client.scheduler.address,
            "host": host,
            "pid": os.getpid(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        }
        record.write_text(json.dumps(info, indent=2))
        try:
            yield client
        finally:
            record.unlink(missing_ok=True)


@safe_umask()  # study folders, stores and checkpoints: never group- or world-writable
def run_stages(
    config: StudyConfig,
    stages_to_run: list[str],
    levels: list[FidelityLevel | None],
    *,
    client: Client | None = None,
    progress: bool = True,
    replace_stale: bool = False,
    profile: str | None = None,
    cluster_overrides: dict[str, object] | None = None,
    emulator_error: bool = True,
) -> StudyRun:
    """Run some stages for some levels (``None`` is the ceiling), after checking what they read.

    Parameters
    ----------
    config : StudyConfig
    stages_to_run : list of str
        Names from :data:`STAGES`, run in pipeline order whatever order they are given in.
    levels : list
        The levels the per-level stages run for; the ceiling has no emulator stages.
    client : distributed.Client, optional
        By default the config's cluster profile is started (only if a stage needs one).
    replace_stale : bool
        Move outputs of another config into ``<study>/stale/`` instead of refusing to run.
    profile, cluster_overrides : optional
        A cluster profile and settings to use instead of the config's (e.g. inside a SLURM job).
    emulator_error : bool
        Measure the levels' emulator error in the emulate stage (``emustudy run --target``
        leaves it out: the search reads only posterior scores).

    Raises
    ------
    EmustudyError
        If a stage's inputs are missing or another config's, naming the command that makes them.
    """
    unknown = sorted(set(stages_to_run) - set(STAGES))
    if unknown:
        raise ValueError(f"unknown stages {unknown}; stages are {', '.join(STAGES)}")
    layout = StudyLayout(config.study_dir)
    ordered = [stage for stage in STAGES if stage in stages_to_run]
    if replace_stale:
        names = ([None] if "simulate" in ordered else []) + [level_name(level) for level in levels]
        for moved in move_stale_aside(config, layout, names):
            logger.warning("outputs of a different config moved to %s", moved)
    if ordered:  # fail before starting a cluster; later stages read what earlier ones make
        first = ordered[0]
        if first in ("simulate", "report"):
            require_done(config, layout, first, None)
        for name in _stage_names(config, first, levels):
            require_done(config, layout, first, name)
    needs_client = any(stage != "report" for stage in ordered)
    if client is None and needs_client:
        with study_client(config, layout, profile=profile, **(cluster_overrides or {})) as own:
            same = {"progress": progress, "emulator_error": emulator_error}
            return run_stages(config, ordered, levels, client=own, **same)  # stale ones moved
    began, run = time.perf_counter(), StudyRun(layout)
    if client is not None:
        client.run(tighten_umask)  # workers of a cluster the caller started write files too
        logger.info(
            "study %s in %s (dashboard: %s)", config.name, layout.root, client.dashboard_link
        )
    emulator_levels = [level for level in levels if level is not None and not is_finetune(level)]
    for stage in ordered:
        chosen = emulator_levels if stage in ("train-emulator", "emulate") else levels
        if stage == "simulate":
            run.outcomes += stages.simulate(config, layout, client, progress)
            continue
        if stage == "report":
            require_done(config, layout, "report", None)
            run.outcomes.append(_report(config, layout))
            continue
        run.outcomes += _level_stage(
            config, layout, client, stage, chosen, progress, emulator_error
        )
    write_resolved_config(config, layout)
    run.seconds = time.perf_counter() - began
    return run


def _level_stage(
    config: StudyConfig,
    layout: StudyLayout,
    client: Client,
    stage: str,
    levels: list[FidelityLevel | None],
    progress: bool,
    emulator_error: bool,
) -> list[StageOutcome]:
    """One per-level stage, after checking what it reads."""
    for name in _stage_names(config, stage, levels):
        require_done(config, layout, stage, name)
    if not levels:
        return []
    if stage == "emulate":
        return stages.emulate(config, layout, client, levels, progress, emulator_error)
    return _LEVEL_STAGES[stage](config, layout, client, levels, progress)


def _stage_names(config: StudyConfig, stage: str, levels: list[FidelityLevel | None]) -> list[str]:
    """The units a per-level stage runs for: levels, or (level, method) pairs for infer/score."""
    if stage in ("simulate", "report"):
        return []
    if stage in ("infer", "score"):
        return [unit.name for unit in units(config, levels)]
    return [level_name(level) for level in levels if level is not None]


def run_study(
    config: StudyConfig, *, client: Client | None = None, progress: bool = True
) -> StudyRun:
    """Run every stage of a study that is not done yet.

    Parameters
    ----------
    config : StudyConfig
    client : distributed.Client, optional
        A client to run on; by default the config's cluster profile is started and stopped.
    progress : bool
        Show progress bars.
    """
    run = run_stages(config, list(STAGES), [*config.ladder, None], client=client, progress=progress)
    logger.info(
        "study %s: %d stages ran, %d were already done, %.1f s; report: %s",
        config.name,
        len(run.recomputed),
        len(run.outcomes) - len(run.recomputed),
        run.seconds,
        run.report,
    )
    return run
