"""Run a whole study, stage after stage, into its study folder."""

from __future__ import annotations

import logging
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from distributed import Client

from cluster.client import cluster_client
from pipelines import stages
from pipelines.config import StudyConfig, digest
from pipelines.layout import CEILING, StudyLayout
from pipelines.manifest import Manifest
from pipelines.report import scores_table, write_report
from pipelines.stages import StageOutcome

__all__ = ["StudyRun", "run_study", "write_resolved_config"]

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


def _report(config: StudyConfig, layout: StudyLayout) -> StageOutcome:
    names = [level.name for level in config.ladder] + [CEILING]
    stores = {name: layout.level(name).scores for name in names}
    key = digest([Manifest(layout.level(n).manifest).entries().get("score") for n in names])
    manifest = Manifest(layout.report / "manifest.json")
    index = layout.report / "index.html"
    if manifest.is_done("report", key, [index, layout.report / "scores.csv"]):
        return StageOutcome("report", None, False, 0.0)
    began = time.perf_counter()
    table = scores_table(stores)
    write_report(table, layout.report, f"emustudy: {config.name}")
    manifest.mark_done("report", key)
    return StageOutcome("report", None, True, time.perf_counter() - began)


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
    layout = StudyLayout(config.study_dir)
    began = time.perf_counter()
    run = StudyRun(layout)
    if client is None:
        settings = config.cluster
        with cluster_client(
            settings.profile, profiles_file=settings.profiles_file, **settings.overrides
        ) as own:
            return run_study(config, client=own, progress=progress)
    levels = list(config.ladder)
    logger.info("study %s in %s (dashboard: %s)", config.name, layout.root, client.dashboard_link)
    run.outcomes += stages.simulate(config, layout, client, progress)
    run.outcomes += stages.train_emulators(config, layout, client, levels, progress)
    run.outcomes += stages.emulate(config, layout, client, levels, progress)
    run.outcomes += stages.infer(config, layout, client, [*levels, None], progress)
    run.outcomes += stages.score(config, layout, client, [*levels, None], progress)
    run.outcomes.append(_report(config, layout))
    write_resolved_config(config, layout)
    run.seconds = time.perf_counter() - began
    logger.info(
        "study %s: %d stages ran, %d were already done, %.1f s; report: %s",
        config.name,
        len(run.recomputed),
        len(run.outcomes) - len(run.recomputed),
        run.seconds,
        run.report,
    )
    return run
