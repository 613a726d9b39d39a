"""``emustudy run --target``: locate a sweep's crossing of the quality target by bisection.

A full sweep pays for every level's emulator, posteriors and scores. To find where the posterior
quality crosses ``report.quality_target`` it is enough, if quality is monotone in the
simplification, to bisect: order the sweep's levels from the most simplified to the least
(by their ``simplification``), assume the quality fails the target beyond the most simplified
end and meets it beyond the least, and run the whole pipeline of one level at a time.

Each level probed is judged with its uncertainty (:func:`verdict`): its mean score over
replicates and observations, plus or minus twice its standard error (as ``emustudy plan``
states a measured level), either **meets** or **fails** the target, or is **undecided**: the
target lies inside its interval, so the study cannot tell which side the level is on. The search
(:func:`next_probe`) keeps the bracket between the least simplified level that surely fails and
the most simplified that surely meets. Without undecided levels that is plain bisection, about
``log2(n + 1)`` levels for ``n``; an undecided level splits the bracket in two and each part is
bisected on its own, so the search ends with the bracket's two ends decided and, between them,
only undecided levels. That is the stated resolution: the crossing lies between the two ends,
one step of the sweep's grid apart, or wider where levels within the study's uncertainty of the
target sit between them (a finer grid cannot help there; more replicates or observations can).
The crossing is estimated by linear interpolation, in the knob, between the two neighbouring
probes whose means straddle the target, as :func:`inference.dose_response.crossing` does.

Levels already scored for this config (by an earlier ``run``, ``plan`` or ``--target``) are
used as they are and cost nothing more; every level runs through the study's stages and
manifests, so a later ``emustudy run`` reuses the levels probed. The search does not measure
the probes' emulator error (against held-out true-simulator draws, about as costly as a probe's
posteriors and scores together on the quickstart model): a verdict reads only the posterior
scores. A later ``emustudy run`` or ``plan`` measures it where missing. The cost is what the stages
recorded (``timings.json``); the result, with the core-seconds spent and the levels left out,
goes to ``report/adaptive.json``. The same search drives ``emustudy submit --target``
(:mod:`pipelines.submit_control`), one SLURM array task per level probed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from rich.table import Table

from inference.score_table import quality_scores
from pipelines.config import StudyConfig
from pipelines.layout import StudyLayout
from pipelines.plan import measured_quality
from pipelines.report_data import unit_costs
from pipelines.state import stage_states
from pipelines.study import run_stages, study_client
from pipelines.sweeps import knob_values
from simulators.errors import ConfigError

__all__ = [
    "AdaptiveSweep",
    "Probe",
    "Verdict",
    "adaptive_result",
    "adaptive_table",
    "describe",
    "bisect_levels",
    "next_probe",
    "print_adaptive",
    "probes_on_disk",
    "require_sweeps",
    "sweep_levels",
    "run_adaptive",
    "verdict",
    "write_adaptive",
]

LEVEL_STAGES = ["train-emulator", "emulate", "infer", "score"]
Verdict = Literal["meets", "fails", "undecided"]


@dataclass(frozen=True)
class Probe:
    """One level the search used: its knob value, mean score and the half-width of its
    interval (twice the standard error), its verdict, and its recorded cost."""

    level: str
    knob: float
    quality: float
    spread: float
    verdict: Verdict
    core_seconds: float


@dataclass(frozen=True)
class AdaptiveSweep:
    """Where one sweep crosses the target, from the levels probed.

    ``fails_level`` is the least simplified level found surely to fail the target and
    ``meets_level`` the most simplified found surely to meet it (None at an end of the sweep:
    no level surely fails, or none surely meets); ``bracket`` is their knob values (NaN for
    None), ``undecided`` the levels probed between them whose interval holds the target, and
    ``crossing`` the interpolated knob value. ``monotone`` is False when a surely failing
    level is less simplified than a surely meeting one (then the bracket is that pair).
    """

    sweep: str
    knob: str
    probes: list[Probe]
    fails_level: str | None
    meets_level: str | None
    undecided: list[str]
    bracket: tuple[float, float]
    crossing: float
    n_levels: int
    core_seconds: float
    monotone: bool = True


def verdict(mean: float, spread: float, target: float, lower_is_better: bool) -> Verdict:
    """Whether a level with score ``mean`` +/- ``spread`` meets ``target``, fails it, or the
    target lies within its interval (``undecided``)."""
    margin = target - mean if lower_is_better else mean - target
    if not np.isfinite(margin) or abs(margin) <= spread:
        return "undecided"
    return "meets" if margin > 0 else "fails"


def _ends(n: int, verdicts: dict[int, Verdict]) -> tuple[int, int]:
    """The least simplified surely failing index (-1: none) and the most simplified surely
    meeting one (``n``: none)."""
    fails = max((i for i, v in verdicts.items() if v == "fails"), default=-1)
    meets = min((i for i, v in verdicts.items() if v == "meets"), default=n)
    return fails, meets


def next_probe(n: int, verdicts: dict[int, Verdict]) -> int | None:
    """The next level to run, or None when the bracket is resolved.

    Parameters
    ----------
    n : int
        Levels of the sweep, index 0 the most simplified.
    verdicts : dict
        Index to :data:`Verdict` of the levels judged so far (in any order, from any source).

    Returns
    -------
    int or None
        The middle of the larger part of the bracket still open: between the surely failing
        end and the first undecided level, or between the last undecided level and the surely
        meeting end. None when both parts are empty, or the verdicts are not monotone.
    """
    fails, meets = _ends(n, verdicts)
    if fails > meets:
        return None
    undecided = sorted(i for i, v in verdicts.items() if fails < i < meets and v == "undecided")
    parts = [(fails, undecided[0]), (undecided[-1], meets)] if undecided else [(fails, meets)]
    low, high = max(parts, key=lambda part: part[1] - part[0])  # the first of equals
    return (low + high) // 2 if high - low > 1 else None


def bisect_levels(
    n: int, judge: Callable[[int], Verdict], known: dict[int, Verdict] | None = None
) -> tuple[list[int], dict[int, Verdict]]:
    """Run the search to the end: ``judge(i)`` runs (or reads) level ``i`` and judges it.

    Returns
    -------
    probed : list of int
        Levels ``judge`` was called for, in order (``known`` ones are not called).
    verdicts : dict
        Every verdict, ``known`` included.
    """
    verdicts, probed = dict(known or {}), []
    while (i := next_probe(n, verdicts)) is not None:
        probed.append(i)
        verdicts[i] = judge(i)
    return probed, verdicts


def require_sweeps(config: StudyConfig, command: str = "emustudy run --target") -> None:
    """Refuse a config without a sweep, naming the fix.

    Raises
    ------
    ConfigError
    """
    if not config.sweeps:
        raise ConfigError(
            f"`{command}` bisects a sweep's levels, but the ladder has no `- sweep: {{...}}` "
            "entry; add one (see configs/control.yaml) or run without --target"
        )


def sweep_levels(config: StudyConfig, sweep_name: str) -> list[str]:
    """A sweep's levels, most simplified first."""
    sweep = next(s for s in config.sweeps if s.name == sweep_name)
    simplification = {level.name: level.simplification for level in config.ladder}
    return sorted(knob_values(sweep), key=lambda name: -simplification[name])


def _cost(config: StudyConfig, layout: StudyLayout, name: str) -> float:
    """Core-seconds a probed level took: its simulator runs, its four stages and its emulator
    error where it was measured (by a full run or ``plan``; the search itself leaves it out)."""
    cost = unit_costs(config, layout, name)
    stages = [cost[f"{stage}_s"] for stage in [*LEVEL_STAGES, "emulator-error"]]
    return cost["simulator_core_hours"] * 3600 + float(np.nansum(stages))


def scored_levels(config: StudyConfig, layout: StudyLayout) -> set[str]:
    """Levels whose every score (each inference method) is done for this config."""
    states = [s for s in stage_states(config, layout, counts=False) if s.stage == "score"]
    level = {s.level: str(s.level).split("/", 1)[0] for s in states}
    undone = {level[s.level] for s in states if s.state != "done"}
    return {name for name in level.values() if name not in undone}


def probes_on_disk(config: StudyConfig, layout: StudyLayout, sweep: str) -> dict[int, Probe]:
    """The sweep's levels already scored for this config, judged, by index in
    :func:`sweep_levels` order."""
    score, target = config.report.quality_score, config.report.quality_target
    lower = bool(quality_scores()[score].lower_is_better)
    names = sweep_levels(config, sweep)
    knobs = knob_values(next(s for s in config.sweeps if s.name == sweep))
    done = scored_levels(config, layout)
    found = {}
    for i, name in enumerate(names):
        if name in done:
            mean, spread = measured_quality(layout, name, score)
            judged = verdict(mean, spread, target, lower)
            found[i] = Probe(
                name, float(knobs[name]), mean, spread, judged, _cost(config, layout, name)
            )
    return found


def run_adaptive(config: StudyConfig, *, progress: bool = True) -> list[AdaptiveSweep]:
    """Search each sweep of ``config`` for its crossing of ``report.quality_target``.

    Returns
    -------
    list of AdaptiveSweep
        One per sweep; also written to ``<study>/report/adaptive.json``.

    Raises
    ------
    ConfigError
        If the config has no ``sweep:`` ladder entry.
    """
    require_sweeps(config)
    began, layout = time.perf_counter(), StudyLayout(config.study_dir)
    by_name = {level.name: level for level in config.ladder}
    with study_client(config, layout) as client:
        run_stages(config, ["simulate"], [], client=client, progress=progress)
        for sweep in config.sweeps:
            names = sweep_levels(config, sweep.name)
            while True:
                known = probes_on_disk(config, layout, sweep.name)
                i = next_probe(len(names), {k: p.verdict for k, p in known.items()})
                if i is None:
                    break
                level = by_name[names[i]]
                run_stages(
                    config,
                    LEVEL_STAGES,
                    [level],
                    client=client,
                    progress=progress,
                    emulator_error=False,
                )
    found = adaptive_result(config, layout)
    write_adaptive(found, layout, time.perf_counter() - began)
    return found


def adaptive_result(config: StudyConfig, layout: StudyLayout) -> list[AdaptiveSweep]:
    """Each sweep's bracket and crossing from the levels scored on disk."""
    require_sweeps(config)
    found = []
    for sweep in config.sweeps:
        names = sweep_levels(config, sweep.name)
        probes = probes_on_disk(config, layout, sweep.name)
        found.append(_result(sweep.name, sweep.knob, names, probes, config.report.quality_target))
    return found


def _result(
    sweep: str, knob: str, names: list[str], probes: dict[int, Probe], target: float
) -> AdaptiveSweep:
    """The bracket, the undecided levels inside it and the interpolated crossing."""
    n = len(names)
    fails, meets = _ends(n, {i: p.verdict for i, p in probes.items()})
    low, high = sorted((fails, meets))
    undecided = [probes[i].level for i in sorted(probes) if low < i < high]
    bracket = (
        probes[fails].knob if fails >= 0 else float("nan"),
        probes[meets].knob if meets < n else float("nan"),
    )
    crossing = float("nan")
    if fails < meets and fails >= 0 and meets < n:
        inside = [probes[i] for i in sorted(probes) if fails <= i <= meets]
        crossing = float(np.mean(bracket))
        for a, b in zip(inside, inside[1:], strict=False):
            if (a.quality - target) * (b.quality - target) <= 0 and a.quality != b.quality:
                share = (target - a.quality) / (b.quality - a.quality)
                crossing = a.knob + share * (b.knob - a.knob)
                break
    ordered = [probes[i] for i in sorted(probes)]
    return AdaptiveSweep(
        sweep,
        knob,
        ordered,
        probes[fails].level if fails >= 0 else None,
        probes[meets].level if meets < n else None,
        undecided,
        bracket,
        crossing,
        n,
        sum(p.core_seconds for p in ordered),
        fails <= meets,
    )


def write_adaptive(found: list[AdaptiveSweep], layout: StudyLayout, seconds: float) -> Path:
    """Write ``report/adaptive.json`` (atomically) and return its path."""
    path = layout.report / "adaptive.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"seconds": seconds, "sweeps": [asdict(sweep) for sweep in found]}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1, default=float))
    temporary.replace(path)
    return path


def adaptive_table(found: AdaptiveSweep, score: str) -> Table:
    """The probes of one sweep, in knob order."""
    table = Table(
        title=f"sweep {found.sweep}: {len(found.probes)} of {found.n_levels} levels run "
        f"({found.core_seconds:.0f} core-s)"
    )
    for header in ("level", found.knob, score, "+/- 2 SE", "verdict", "cost"):
        table.add_column(header, justify="left" if header == "level" else "right")
    for probe in sorted(found.probes, key=lambda p: p.knob):
        table.add_row(
            probe.level,
            f"{probe.knob:g}",
            f"{probe.quality:.3f}",
            f"{probe.spread:.3f}",
            probe.verdict,
            f"{probe.core_seconds:.0f} core-s",
        )
    return table


def describe(sweep: AdaptiveSweep, score: str, target: float) -> str:
    """Where the sweep crosses the target, in one sentence."""
    if not sweep.monotone:
        return (
            f"not monotone: {sweep.fails_level} surely fails {score} {target:g} but the more "
            f"simplified {sweep.meets_level} surely meets it; the crossing lies between "
            f"{sweep.knob} {sweep.bracket[1]:g} and {sweep.bracket[0]:g}, or the levels' "
            "order is not the quality's"
        )
    if sweep.fails_level and sweep.meets_level:
        within = (
            f", with {', '.join(sweep.undecided)} within the study's uncertainty of the target"
            if sweep.undecided
            else " (adjacent levels)"
        )
        return (
            f"{score} crosses {target:g} between {sweep.fails_level} and {sweep.meets_level}"
            f"{within}: {sweep.knob} from {sweep.bracket[0]:g} to {sweep.bracket[1]:g}, at "
            f"about {sweep.crossing:.4g}"
        )
    if sweep.meets_level is None and sweep.fails_level is None:
        return f"every level probed is within the study's uncertainty of {score} {target:g}"
    if sweep.meets_level is None:
        return f"no level of the sweep surely meets {score} {target:g}"
    return f"every level of the sweep meets {score} {target:g}"


def print_adaptive(console: Any, found: list[AdaptiveSweep], config: StudyConfig) -> None:
    """Print each sweep's probes, its bracket and the core-seconds the search saved."""
    score, target = config.report.quality_score, config.report.quality_target
    for sweep in found:
        console.print(adaptive_table(sweep, score))
        per_level = sweep.core_seconds / max(len(sweep.probes), 1)
        left_out = sweep.n_levels - len(sweep.probes)
        console.print(
            f"{describe(sweep, score, target)}; {left_out} levels not run, at least about "
            f"{left_out * per_level:.0f} core-s saved against the full sweep (those levels at "
            "the probed levels' mean cost; the full sweep also pays the ceiling and every "
            "level's emulator error)",
            highlight=False,
            soft_wrap=True,  # one line per sweep in a log file, not one cut at 80 columns
        )
