"""What each stage of a level cost (:class:`StageOutcome`), and ``timings.json``, where those
costs are kept beside the stage's outputs."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pipelines.layout import StudyLayout

__all__ = [
    "StageOutcome",
    "read_member_costs",
    "read_timings",
    "record_timings",
    "write_member_costs",
]


@dataclass(frozen=True)
class StageOutcome:
    """What one stage did for one level (``level`` is None for study-wide stages).

    ``seconds`` is wall time (waiting for other levels' tasks included); ``cpu_seconds`` the
    core seconds its own tasks spent (:mod:`cluster.task_clock`), where they were measured.
    """

    stage: str
    level: str | None
    ran: bool
    seconds: float
    cpu_seconds: float | None = None


def read_timings(folder: Path) -> dict[str, float]:
    """A folder's ``timings.json`` (``{}`` where no stage of it has run)."""
    return _read(folder / "timings.json")


def record_timings(layout: StudyLayout, outcomes: Iterable[StageOutcome]) -> None:
    """Add the seconds of stages that ran to ``timings.json`` beside their outputs.

    ``<stage>``: wall seconds, waiting for other levels' tasks included (as studies before
    core seconds were measured wrote them); ``<stage>_cpu``: the core seconds of the stage's own
    tasks (:mod:`cluster.task_clock`). The report's costs read ``<stage>_cpu`` and fall back to
    ``<stage>`` for a study that has only wall seconds.
    """
    for outcome in outcomes:
        if outcome.stage == "report" or not outcome.ran:
            continue
        level = outcome.level
        folder = layout.root / "simulations" if level is None else layout.level(level).method_root
        timings = read_timings(folder)
        timings[outcome.stage] = round(outcome.seconds, 3)
        if outcome.cpu_seconds is not None:
            timings[f"{outcome.stage}_cpu"] = round(outcome.cpu_seconds, 3)
        else:  # a wall time now: an older core time of this stage no longer describes it
            timings.pop(f"{outcome.stage}_cpu", None)
        folder.mkdir(parents=True, exist_ok=True)
        _write(folder / "timings.json", timings)


def read_member_costs(path: Path) -> dict[str, float]:
    """Core seconds of each reference member's training, by member file name (``{}`` if none)."""
    return _read(path)


def write_member_costs(path: Path, costs: dict[str, float]) -> None:
    """Keep what training each reference member cost, as soon as it is trained: a run stopped
    before the reference is done keeps the member, and a resumed run (which loads it instead
    of training it) must still count its cost."""
    _write(path, {name: round(seconds, 3) for name, seconds in costs.items()})


def _read(path: Path) -> dict[str, float]:
    return json.loads(path.read_text()) if path.exists() else {}


def _write(path: Path, record: dict[str, float]) -> None:
    """Write ``record`` as JSON atomically: a run killed mid-write leaves the old file."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=2, sort_keys=True))
    os.replace(temporary, path)
