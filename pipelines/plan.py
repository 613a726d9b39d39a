"""``emustudy plan``: predict each level's posterior quality from its emulator error, cheaply.

The plan runs the cheap stages for every level of the ladder (``simulate``, ``train-emulator``,
``emulate``, which measures each stand-in's error), then trains and scores posteriors for a few
*anchor* levels only: the levels already scored, plus levels spread evenly over the measured
emulator error, its smallest and largest included (``--anchors``, default 4). On the anchors it
fits an isotonic predictor of ``report.quality_score`` from the emulator error and
cross-validates it leave-one-level-out (:mod:`inference.quality_prediction`); every other level
gets a predicted quality with an interval of twice the LOLO root-mean-square error, and a
predicted cost: its simulator runs, its own recorded emulator stages, and the anchors' median
posterior training time. Each sweep gets the knob value where the predicted quality crosses
``report.quality_target``, with the interval the band's crossings span.

Everything runs through the study's stages, manifests and digests, so a later ``emustudy run``
reuses the emulators, emulated stores, errors and anchor posteriors the plan made and trains only
the rest. The plan's own output is ``report/plan.json``, which no other stage reads or writes.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from inference.emulator_error import load_emulator_error
from inference.quality_prediction import MIN_ANCHORS, knob_crossing, predict_quality
from inference.score_table import quality_scores
from inference.scores import load_scores
from pipelines.config import StudyConfig
from pipelines.finetune import is_finetune
from pipelines.layout import StudyLayout
from pipelines.report_data import replicate_by_observation, unit_costs
from pipelines.state import stage_states
from pipelines.study import run_stages, study_client
from pipelines.sweeps import knob_values
from simulators.errors import ConfigError

__all__ = [
    "CHEAP_STAGES",
    "ERROR_METRICS",
    "LevelPlan",
    "StudyPlan",
    "candidate_levels",
    "choose_anchors",
    "measured_quality",
    "plan_anchors",
    "predict_plan",
    "plan_table",
    "run_plan",
]

ERROR_METRICS = ("nll", "c2st", "mmd")
"""Measured emulator errors a plan may predict from (:mod:`inference.emulator_error`)."""
CHEAP_STAGES = ["simulate", "train-emulator", "emulate"]


@dataclass(frozen=True)
class LevelPlan:
    """One level of the plan; ``measured`` levels are anchors (their quality was scored)."""

    level: str
    simplification: float
    emulator_error: float
    quality: float
    low: float
    high: float
    measured: bool
    core_seconds: float
    knob: float | None = None


@dataclass(frozen=True)
class StudyPlan:
    """What :func:`run_plan` predicted (also written to ``report/plan.json``)."""

    score: str
    target: float
    lower_is_better: bool
    error_metric: str
    anchors: list[str]
    lolo_residuals: list[float]
    lolo_rmse: float
    levels: list[LevelPlan]
    crossings: dict[str, dict[str, float | str]]
    cheapest: str | None
    cheapest_sure: str | None
    seconds: float


def candidate_levels(config: StudyConfig) -> list[Any]:
    """The levels with a stand-in of their own (finetune levels train on true runs instead)."""
    return [level for level in config.ladder if not is_finetune(level)]


def _meets(value: float, target: float, lower_is_better: bool) -> bool:
    return bool(value <= target if lower_is_better else value >= target)


def choose_anchors(errors: dict[str, float], scored: list[str], n: int) -> list[str]:
    """The levels to score: ``scored`` ones, plus ``n`` spread evenly over the sorted error.

    Parameters
    ----------
    errors : dict
        Level name to measured emulator error (finite).
    scored : list of str
        Levels already scored (free anchors).
    n : int
        Levels picked by error rank: the smallest, the largest and evenly between.

    Raises
    ------
    ConfigError
        If ``n`` is below :data:`~inference.quality_prediction.MIN_ANCHORS` or above the
        number of levels.
    """
    if not MIN_ANCHORS <= n <= len(errors):
        raise ConfigError(
            f"--anchors {n}: a plan scores between {MIN_ANCHORS} and the {len(errors)} levels "
            f"with a measured error; pass --anchors {max(MIN_ANCHORS, min(n, len(errors)))}"
        )
    ranked = sorted(errors, key=lambda name: errors[name])
    picked = {ranked[int(i)] for i in np.round(np.linspace(0, len(ranked) - 1, n))}
    return [name for name in ranked if name in picked or name in scored]


def _error_metric(config: StudyConfig, layout: StudyLayout, wanted: str) -> dict[str, float]:
    """Each level's measured error by ``wanted`` (``auto``: NLL where every level has one)."""
    found = {}
    for level in candidate_levels(config):
        error = load_emulator_error(layout.level(level.name).emulator_error)
        found[level.name] = {m: float(error[m]) for m in ERROR_METRICS}
    if wanted == "auto":
        wanted = "nll" if all(np.isfinite(v["nll"]) for v in found.values()) else "c2st"
    if wanted not in ERROR_METRICS:
        raise ConfigError(f"--error {wanted!r} is unknown; use auto or one of {ERROR_METRICS}")
    return {"metric": wanted, **{name: v[wanted] for name, v in found.items()}}  # type: ignore[dict-item]


def measured_quality(layout: StudyLayout, name: str, score: str) -> tuple[float, float]:
    """A scored level's mean ``score`` over replicates and observations (as the dose-response
    takes it), and twice its standard error."""
    ds = load_scores(layout.level(name).scores)
    values = replicate_by_observation(ds[score].squeeze("level", drop=True)).ravel()
    values = values[np.isfinite(values)]
    spread = 2 * values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else 0.0
    return float(values.mean()), float(spread)


def _core_seconds(
    config: StudyConfig, layout: StudyLayout, names: list[str], anchors: list[str]
) -> dict[str, float]:
    """Recorded core-seconds per level; posterior training of non-anchors is the anchors'
    median (every level trains the same network on the same number of emulated runs)."""
    costs = {name: unit_costs(config, layout, name) for name in names}
    infer = np.nanmedian([costs[name]["infer_s"] for name in anchors])
    total = {}
    for name, cost in costs.items():
        own = [cost["train-emulator_s"], cost["emulate_s"], cost["infer_s"]]
        own[2] = own[2] if np.isfinite(own[2]) else infer
        total[name] = cost["simulator_core_hours"] * 3600 + float(np.nansum(own))
    return total


def run_plan(
    config: StudyConfig, *, anchors: int = 4, error: str = "auto", progress: bool = True
) -> StudyPlan:
    """Run the cheap stages for every level and the posteriors of a few anchors; predict.

    Parameters
    ----------
    config : StudyConfig
    anchors : int
        Levels spread over the emulator error to score (besides those already scored).
    error : {"auto", "nll", "c2st", "mmd"}
        The measured emulator error to predict from; ``auto`` is NLL where every level has a
        density, else C2ST.
    progress : bool

    Returns
    -------
    plan : StudyPlan
        Also written to ``<study>/report/plan.json``.

    Raises
    ------
    ConfigError
        On a bad ``anchors`` or ``error``, or too few anchors with a finite error.
    """
    began, layout = time.perf_counter(), StudyLayout(config.study_dir)
    levels = candidate_levels(config)
    if not MIN_ANCHORS <= anchors <= len(levels):  # refused before anything runs
        choose_anchors({level.name: 0.0 for level in levels}, [], anchors)
    with study_client(config, layout) as client:
        run_stages(config, CHEAP_STAGES, levels, client=client, progress=progress)
        chosen, errors, metric = plan_anchors(config, layout, anchors, error)
        picked = [level for level in levels if level.name in chosen]
        run_stages(config, ["infer", "score"], picked, client=client, progress=progress)
    return predict_plan(config, layout, errors, metric, chosen, time.perf_counter() - began)


def plan_anchors(
    config: StudyConfig, layout: StudyLayout, anchors: int, error: str
) -> tuple[list[str], dict[str, float], str]:
    """The anchor levels, from every level's measured emulator error (the cheap stages must be
    done); returns the anchors, the errors by level and the error's name."""
    errors = _error_metric(config, layout, error)
    metric = str(errors.pop("metric"))
    usable = {name: e for name, e in errors.items() if np.isfinite(e)}
    states = stage_states(config, layout, counts=False)
    done = {s.level for s in states if s.stage == "score" and s.state == "done"}
    scored = [name for name in usable if name in done]
    return choose_anchors(usable, scored, anchors), errors, metric


def predict_plan(
    config: StudyConfig,
    layout: StudyLayout,
    errors: dict[str, float],
    metric: str,
    anchors: list[str],
    seconds: float,
) -> StudyPlan:
    """Predict every level from the scored ``anchors`` and write ``report/plan.json``."""
    score, target = config.report.quality_score, config.report.quality_target
    lower = bool(quality_scores()[score].lower_is_better)
    measured = {name: measured_quality(layout, name, score) for name in anchors}
    names = [level.name for level in candidate_levels(config)]
    prediction = predict_quality(
        np.array([errors[n] for n in anchors]),
        np.array([measured[n][0] for n in anchors]),
        np.array([errors[n] for n in names]),
        increasing=lower,
    )
    cost = _core_seconds(config, layout, names, anchors)
    knobs = {name: v for sweep in config.sweeps for name, v in knob_values(sweep).items()}
    rows = []
    for i, level in enumerate(candidate_levels(config)):
        name = level.name
        mean, low, high = (p[i] for p in (prediction.predicted, prediction.low, prediction.high))
        if name in measured:
            mean, spread = measured[name]
            low, high = mean - spread, mean + spread
        elif not np.isfinite(errors[name]):
            mean = low = high = float("nan")
        rows.append(
            LevelPlan(
                name, float(level.simplification), errors[name], float(mean), float(low),
                float(high), name in measured, cost[name], knobs.get(name),
            )
        )  # fmt: skip
    plan = StudyPlan(
        score=score,
        target=target,
        lower_is_better=lower,
        error_metric=metric,
        anchors=anchors,
        lolo_residuals=[float(r) for r in prediction.lolo_residuals],
        lolo_rmse=prediction.lolo_rmse,
        levels=rows,
        crossings=_crossings(config, rows),
        cheapest=_cheapest(rows, target, lower, sure=False),
        cheapest_sure=_cheapest(rows, target, lower, sure=True),
        seconds=seconds,
    )
    _write(plan, layout.report / "plan.json")
    return plan


def _cheapest(rows: list[LevelPlan], target: float, lower: bool, sure: bool) -> str | None:
    """The cheapest level whose predicted quality (``sure``: its pessimistic bound) meets it."""
    worst = (lambda r: r.high) if lower else (lambda r: r.low)
    meeting = [
        r
        for r in rows
        if np.isfinite(r.quality) and _meets(worst(r) if sure else r.quality, target, lower)
    ]
    return min(meeting, key=lambda r: r.core_seconds).level if meeting else None


def _crossings(config: StudyConfig, rows: list[LevelPlan]) -> dict[str, dict[str, float | str]]:
    """Per sweep: where the predicted quality crosses the target, and the band's crossings."""
    found: dict[str, dict[str, float | str]] = {}
    by_name = {r.level: r for r in rows}
    for sweep in config.sweeps:
        picked = [by_name[n] for n in knob_values(sweep) if np.isfinite(by_name[n].quality)]
        if len(picked) < 2:
            continue
        point, low, high = knob_crossing(
            np.array([r.knob for r in picked], dtype=float),
            *(np.array([getattr(r, f) for r in picked]) for f in ("quality", "low", "high")),
            config.report.quality_target,
        )
        found[sweep.name] = {"knob": sweep.knob, "crossing": point, "low": low, "high": high}
    return found


def _write(plan: StudyPlan, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    record = asdict(plan)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(record, indent=1, default=float))
    temporary.replace(path)


def _number(value: float, form: str = "{:.3f}") -> str:
    return "-" if value is None or not np.isfinite(value) else form.format(value)


def plan_table(plan: StudyPlan) -> Table:
    """The plan as a table: each level's emulator error, quality with interval, and cost."""
    table = Table(
        title=f"predicted {plan.score} from emulator {plan.error_metric} (anchors scored; "
        f"interval: measured +/- 2 SE, predicted +/- 2 x LOLO RMSE {plan.lolo_rmse:.3f})"
    )
    for header in ("level", "knob", f"emu {plan.error_metric}", plan.score, "interval", "", "cost"):
        table.add_column(header, justify="left" if header == "level" else "right")
    for row in plan.levels:
        table.add_row(
            row.level,
            "-" if row.knob is None else f"{row.knob:g}",
            _number(row.emulator_error),
            _number(row.quality),
            f"[{_number(row.low)}, {_number(row.high)}]",
            "measured" if row.measured else "predicted",
            f"{row.core_seconds:.0f} core-s",
        )
    return table
