"""``emustudy run CONFIG --target``: locate a sweep's crossing of the quality target by bisection.

A full sweep pays for every level's emulator, posteriors and scores. To find where the posterior
quality crosses ``report.quality_target`` it is enough, if quality is monotone in the
simplification, to bisect: order the sweep's levels from the most simplified to the least
(by their ``simplification``), assume the quality fails the target beyond the most simplified
end and meets it beyond the least, and run the whole pipeline of one level at a time, the
middle of the bracket still open (:func:`bisect_levels`). After about ``log2(n + 1)`` levels the
crossing lies between two **adjacent levels of the sweep** (the stated resolution: one step of
its grid); the crossing is estimated by linear interpolation of the two levels' mean scores in
the knob, as :func:`inference.dose_response.crossing` does.

Each level runs through the study's stages and manifests, so a later ``emustudy run`` reuses
the levels probed. The cost is what the stages recorded (``timings.json``, core-seconds on one
worker each); the result, with the core-seconds spent and the levels left out, goes to
``report/adaptive.json``. Caveat: a level whose measured mean sits on the wrong side of the
target by noise sends the bisection the wrong way; it still ends at two adjacent levels, but
maybe not the pair the full sweep's isotonic fit crosses between.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from inference.score_table import quality_scores
from pipelines.config import StudyConfig
from pipelines.layout import StudyLayout
from pipelines.plan import measured_quality
from pipelines.report_data import unit_costs
from pipelines.study import run_stages, study_client
from pipelines.sweeps import knob_values
from simulators.errors import ConfigError

__all__ = [
    "AdaptiveSweep",
    "Probe",
    "adaptive_table",
    "bisect_levels",
    "print_adaptive",
    "run_adaptive",
]

_LEVEL_STAGES = ["train-emulator", "emulate", "infer", "score"]


@dataclass(frozen=True)
class Probe:
    """One level the bisection ran: its knob value, mean score, whether it meets, its cost."""

    level: str
    knob: float
    quality: float
    meets: bool
    core_seconds: float


@dataclass(frozen=True)
class AdaptiveSweep:
    """Where one sweep crosses the target, from the levels probed.

    ``meets_level`` is the most simplified level found to meet the target and
    ``fails_level`` its more simplified neighbour, found to fail it (None at an end of the
    sweep: no level meets it, or every level does); ``bracket`` is their knob values (NaN
    for None) and ``crossing`` the interpolated knob value between them.
    """

    sweep: str
    knob: str
    probes: list[Probe]
    fails_level: str | None
    meets_level: str | None
    bracket: tuple[float, float]
    crossing: float
    n_levels: int
    core_seconds: float


def bisect_levels(n: int, meets: Callable[[int], bool]) -> tuple[list[int], int, int]:
    """Bisect ``n`` levels ordered from most to least simplified for the first that meets.

    Parameters
    ----------
    n : int
        Levels, index 0 the most simplified.
    meets : callable
        ``meets(i)`` runs (or reads) level ``i`` and says whether it meets the target; it is
        called once per probed level.

    Returns
    -------
    probed : list of int
        Levels probed, in order (about ``log2(n + 1)`` of them).
    fails, first_meeting : int
        Adjacent indices: ``fails`` is -1 when even the most simplified level meets,
        ``first_meeting`` is ``n`` when no level does.
    """
    low, high, probed = -1, n, []
    while high - low > 1:
        middle = (low + high) // 2
        probed.append(middle)
        if meets(middle):
            high = middle
        else:
            low = middle
    return probed, low, high


def _sweep_levels(config: StudyConfig, sweep_name: str) -> list[str]:
    """A sweep's levels, most simplified first."""
    sweep = next(s for s in config.sweeps if s.name == sweep_name)
    simplification = {level.name: level.simplification for level in config.ladder}
    return sorted(knob_values(sweep), key=lambda name: -simplification[name])


def _cost(config: StudyConfig, layout: StudyLayout, name: str) -> float:
    """Core-seconds a probed level took: its simulator runs and all four of its stages."""
    cost = unit_costs(config, layout, name)
    stages = [cost[f"{stage}_s"] for stage in _LEVEL_STAGES]
    return cost["simulator_core_hours"] * 3600 + float(np.nansum(stages))


def run_adaptive(config: StudyConfig, *, progress: bool = True) -> list[AdaptiveSweep]:
    """Bisect each sweep of ``config`` for its crossing of ``report.quality_target``.

    Returns
    -------
    list of AdaptiveSweep
        One per sweep; also written to ``<study>/report/adaptive.json``.

    Raises
    ------
    ConfigError
        If the config has no ``sweep:`` ladder entry.
    """
    if not config.sweeps:
        raise ConfigError(
            "`emustudy run --target` bisects a sweep's levels, but the ladder has no `- sweep: "
            "{...}` entry; add one (see configs/control.yaml) or run without --target"
        )
    began, layout = time.perf_counter(), StudyLayout(config.study_dir)
    with study_client(config, layout) as client:
        run_stages(config, ["simulate"], [], client=client, progress=progress)
        found = [_bisect_sweep(config, layout, client, s.name, progress) for s in config.sweeps]
    _write(found, layout.report / "adaptive.json", time.perf_counter() - began)
    return found


def _bisect_sweep(
    config: StudyConfig, layout: StudyLayout, client: Any, sweep: str, progress: bool
) -> AdaptiveSweep:
    """Run one sweep's levels as the bisection asks for them."""
    score, target = config.report.quality_score, config.report.quality_target
    lower = bool(quality_scores()[score].lower_is_better)
    by_name = {level.name: level for level in config.ladder}
    names = _sweep_levels(config, sweep)
    knobs = knob_values(next(s for s in config.sweeps if s.name == sweep))
    probes: dict[int, Probe] = {}

    def meets(i: int) -> bool:
        level = by_name[names[i]]
        run_stages(config, _LEVEL_STAGES, [level], client=client, progress=progress)
        mean, _ = measured_quality(layout, level.name, score)
        ok = bool(mean <= target if lower else mean >= target)
        cost = _cost(config, layout, level.name)
        probes[i] = Probe(level.name, float(knobs[level.name]), mean, ok, cost)
        return ok

    _, fails, first = bisect_levels(len(names), meets)
    knob = next(s.knob for s in config.sweeps if s.name == sweep)
    return _result(sweep, knob, names, knobs, probes, fails, first, target)


def _result(
    sweep: str,
    knob: str,
    names: list[str],
    knobs: dict[str, float],
    probes: dict[int, Probe],
    fails: int,
    first: int,
    target: float,
) -> AdaptiveSweep:
    """The bracket and the interpolated crossing from the probes."""
    fails_level = names[fails] if fails >= 0 else None
    meets_level = names[first] if first < len(names) else None
    bracket = (
        float(knobs[fails_level]) if fails_level else float("nan"),
        float(knobs[meets_level]) if meets_level else float("nan"),
    )
    crossing = float("nan")
    if fails_level and meets_level:
        a, b = probes[fails], probes[first]
        share = (target - a.quality) / (b.quality - a.quality) if b.quality != a.quality else 0.5
        crossing = a.knob + share * (b.knob - a.knob)
    ordered = [probes[i] for i in sorted(probes)]
    return AdaptiveSweep(
        sweep,
        knob,
        ordered,
        fails_level,
        meets_level,
        bracket,
        crossing,
        len(names),
        sum(p.core_seconds for p in ordered),
    )


def _write(found: list[AdaptiveSweep], path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"seconds": seconds, "sweeps": [asdict(sweep) for sweep in found]}
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1, default=float))
    temporary.replace(path)


def adaptive_table(found: AdaptiveSweep, score: str) -> Table:
    """The probes of one sweep, in knob order."""
    table = Table(
        title=f"sweep {found.sweep}: {len(found.probes)} of {found.n_levels} levels run "
        f"({found.core_seconds:.0f} core-s)"
    )
    for header in ("level", found.knob, score, "meets target", "cost"):
        table.add_column(header, justify="left" if header == "level" else "right")
    for probe in sorted(found.probes, key=lambda p: p.knob):
        table.add_row(
            probe.level,
            f"{probe.knob:g}",
            f"{probe.quality:.3f}",
            "yes" if probe.meets else "no",
            f"{probe.core_seconds:.0f} core-s",
        )
    return table


def print_adaptive(console: Any, found: list[AdaptiveSweep], config: StudyConfig) -> None:
    """Print each sweep's probes, its bracket and the core-seconds the bisection saved."""
    score, target = config.report.quality_score, config.report.quality_target
    for sweep in found:
        console.print(adaptive_table(sweep, score))
        per_level = sweep.core_seconds / max(len(sweep.probes), 1)
        left_out = sweep.n_levels - len(sweep.probes)
        if sweep.fails_level and sweep.meets_level:
            where = (
                f"{score} crosses {target:g} between {sweep.fails_level} and "
                f"{sweep.meets_level} (adjacent levels: {sweep.knob} from {sweep.bracket[0]:g} "
                f"to {sweep.bracket[1]:g}), at about {sweep.crossing:.4g}"
            )
        elif sweep.meets_level is None:
            where = f"no level of the sweep meets {score} {target:g}"
        else:
            where = f"every level of the sweep meets {score} {target:g}"
        console.print(
            f"{where}; {left_out} levels not run, about {left_out * per_level:.0f} core-s "
            f"saved against the full sweep (at the probed levels' mean cost)",
            highlight=False,
        )
