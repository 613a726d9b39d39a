"""The numbers of a study report, read from the study folder alone (nothing is recomputed).

Every score is summarised per level as a mean with an interval over training replicates (each
replicate first averaged over observations or test pairs), beside the level's measured emulator
error and its cost: the simulator time it consumed (the campaigns' ledgers) plus the core
seconds of its own stages (``timings.json``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from inference.score_table import summary_scores
from inference.scores import load_scores
from pipelines.config import StudyConfig
from pipelines.finetune import finetune_curves
from pipelines.layout import StudyLayout, level_name
from pipelines.resolution import Resolution, resolve_levels, score_uncertainty
from pipelines.timings import read_timings
from pipelines.units import units
from simulators.store import Status, open_store

__all__ = [
    "SUMMARY_SCORES",
    "ReportData",
    "collect_report_data",
    "replicate_by_observation",
    "score_summary",
    "emulator_speedup",
    "seconds_per_run",
    "simulator_seconds_per_run",
    "stage_seconds",
    "study_costs",
    "unit_costs",
]

SUMMARY_SCORES: dict[str, tuple[str, str, bool | None]] = {
    spec.csv_column: (str(spec.summary), spec.label, spec.lower_is_better)
    for spec in summary_scores()
}
"""``scores.csv`` stem -> (how a replicate becomes one number, label, lower is better?), from the
score table (:data:`inference.score_table.SCORES`)."""
_VARIABLE = {spec.csv_column: spec.name for spec in summary_scores()}
_STAGES = ("train-emulator", "emulate", "emulator-error", "infer", "score")


def _reduce(values: xr.DataArray, how: str) -> np.ndarray:
    """One number per replicate."""
    other = [d for d in values.dims if d not in ("replicate",)]
    data = values.astype(float)
    if how == "min":
        return np.atleast_1d(data.min(dim=other).values)
    if how == "reject":
        return np.atleast_1d((data < 0.05).mean(dim=other).values)
    return np.atleast_1d(data.mean(dim=other).values)


def score_summary(ds: xr.Dataset) -> dict[str, float]:
    """``<score>_mean``, ``_lo`` and ``_hi`` (min and max over replicates) of each score."""
    ds = ds.squeeze("level", drop=True) if "level" in ds.dims else ds
    row: dict[str, float] = {}
    for name, (how, _, _) in SUMMARY_SCORES.items():
        if _VARIABLE[name] not in ds:
            continue
        per_replicate = _reduce(ds[_VARIABLE[name]], how)
        per_replicate = per_replicate[np.isfinite(per_replicate)]
        if per_replicate.size == 0:
            continue
        row[f"{name}_mean"] = float(per_replicate.mean())
        row[f"{name}_lo"] = float(per_replicate.min())
        row[f"{name}_hi"] = float(per_replicate.max())
    if "c2st" in ds:  # range over observations too, for the command-line table
        row["c2st_min"], row["c2st_max"] = float(ds["c2st"].min()), float(ds["c2st"].max())
    row["replicates"] = int(ds.sizes.get("replicate", 1))
    row["observations"] = int(ds.sizes.get("observation", 0))
    return row


@dataclass
class ReportData:
    """Everything the report shows, per unit: a level (ladder order, then the ceiling) with an
    inference method; ``scores`` is keyed by unit name (``full``, ``full/nle``)."""

    table: pd.DataFrame
    scores: dict[str, xr.Dataset]
    emulator_error: dict[str, xr.Dataset] = field(default_factory=dict)
    trend: xr.Dataset | None = None
    """The first method's trend."""
    reference: str = "exact"
    noise_floor: float = float("nan")
    """Mean C2ST between members of a trained reference ensemble (NaN for exact references)."""
    reference_rhat: float = float("nan")
    """Largest split R-hat of an MCMC (likelihood) reference, over observations and parameters."""
    reference_ess: float = float("nan")
    """Smallest effective sample size of an MCMC (likelihood) reference."""
    losses: list[str] = field(default_factory=list)
    """One sentence per stage that lost rows: how many, of how many, and why."""
    reference_vs_truth: float = float("nan")
    """Mean C2ST of a non-exact reference against the exact posterior (where one exists)."""
    reference_note: str = ""
    """What the reference was made from (members kept and dropped, its campaign, its file)."""
    reference_warning: str = ""
    """Set when the reference's own error is above ``reference.trust_threshold``: shown at the
    top of the report, because then no absolute score can be trusted."""
    finetune: dict[str, Any] = field(default_factory=dict)
    """Per base level of finetune levels: ``report.quality_score`` against k
    (:func:`pipelines.finetune.finetune_curves`)."""
    dose_response: dict[str, tuple[str, Any]] = field(default_factory=dict)
    """Per sweep of the config: its knob and :class:`inference.dose_response.DoseResponse` of
    ``report.quality_score`` for the NPE units."""
    degrees: pd.DataFrame | None = None
    """One row per unit and degree of the misspecification sweep
    (:func:`pipelines.degree_report.degree_table`); None without a sweep."""
    degree_knob: str = ""
    study_costs: dict[str, float] = field(default_factory=dict)
    """Core seconds of the study-wide stages (:func:`study_costs`: campaigns, reference)."""
    resolution: Resolution | None = None
    """Which levels ``report.quality_score`` tells apart beyond the study's own uncertainty."""


def _open(path: Path) -> xr.Dataset | None:
    if not path.exists():
        return None
    with xr.open_zarr(path, consolidated=False) as ds:
        return ds.load()


TRUE_STORES = ("train", "test", "observations", "reference")
"""The true-simulator campaigns whose ledgers give the simulator's cost per run."""


def seconds_per_run(stores: list[Path]) -> float:
    """Mean seconds one run took over every row the campaigns into ``stores`` ran (their
    ledgers' ``elapsed``, failed and timed-out rows included: they cost time too); NaN when no
    store has a finished row."""
    elapsed = []
    for store in stores:
        if not store.exists():
            continue
        try:
            ds = open_store(store)
        except Exception:  # noqa: BLE001 - a report without costs is still a report
            continue
        ran = ds["status"].values != Status.PENDING
        elapsed.append(np.asarray(ds["elapsed"].values, dtype=np.float64)[ran])
    values = np.concatenate(elapsed) if elapsed else np.empty(0)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def simulator_seconds_per_run(layout: StudyLayout) -> float:
    """The true simulator's seconds per run, from every true-simulator campaign's ledger
    (measured once where the runs happened, not re-measured per level under contention)."""
    return seconds_per_run([layout.simulations(role) for role in TRUE_STORES])


def _finite_mean(values: np.ndarray) -> float:
    """Mean of the finite entries of ``values`` (any shape); NaN, without numpy's "Mean of empty
    slice" warning, when there are none (a level without a density has an all-NaN NLL)."""
    values = np.asarray(values, dtype=float)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def stage_seconds(timings: dict[str, float], stage: str) -> float:
    """A stage's core seconds (``<stage>_cpu``), or its wall seconds where a study written
    before core seconds were measured has only those; NaN when it did not run."""
    return float(timings.get(f"{stage}_cpu", timings.get(stage, np.nan)))


def study_costs(layout: StudyLayout) -> dict[str, float]:
    """Core seconds of the study-wide stages: each true-simulator campaign and the reference."""
    return {
        f"{stage}_s": stage_seconds(timings, stage)
        for timings in [read_timings(layout.root / "simulations")]
        for stage in sorted(key for key in timings if not key.endswith("_cpu"))
    }


def unit_costs(config: StudyConfig, layout: StudyLayout, name: str) -> dict[str, float]:
    """Core-hours a level consumed: the simulator runs it used plus its own stages.

    Its own stages are training its emulator, emulating, measuring the emulator's error and
    training its posteriors, in core seconds (``timings.json``). Scoring is reported
    (``score_s``) but not counted: it is the study's overhead, not a cost of using the level.
    """
    per_run = simulator_seconds_per_run(layout)
    level = next((lvl for lvl in config.ladder if lvl.name == name.split("/")[0]), None)
    emulator = getattr(level, "emulator", None) if level is not None else None
    if level is None:
        runs = config.budgets.emulated_runs
    else:
        runs = getattr(emulator, "train_samples", None) or config.budgets.train
    timings = {
        **read_timings(layout.level(name).root),  # the level's own stages
        **read_timings(layout.level(name).method_root),  # this method's infer and score
    }
    stage_costs = {f"{stage}_s": stage_seconds(timings, stage) for stage in _STAGES}
    if getattr(level, "kind", None) == "finetune":  # its base's cost, plus k true runs
        base = unit_costs(config, layout, level.base)  # type: ignore[union-attr]
        runs = base["simulator_runs"] + level.true_runs  # type: ignore[union-attr]
        for key in ("train-emulator_s", "emulate_s", "emulator-error_s"):
            stage_costs[key] = base[key]
        stage_costs["infer_s"] = np.nansum([stage_costs["infer_s"], base["infer_s"]])
    own = np.nansum([v for k, v in stage_costs.items() if k != "score_s"])
    simulator_seconds = runs * per_run
    return {
        "simulator_runs": float(runs),
        "simulator_seconds_per_run": per_run,
        "simulator_core_hours": simulator_seconds / 3600,
        **stage_costs,
        "total_core_hours": (simulator_seconds + own) / 3600,
    }


def emulator_speedup(layout: StudyLayout, name: str) -> float:
    """The true simulator's seconds per run over the level's stand-in's, both from campaign
    ledgers (the emulate stage's campaign for the stand-in); NaN without an emulated store."""
    stand_in = seconds_per_run([layout.level(name).emulated])
    return simulator_seconds_per_run(layout) / stand_in if stand_in > 0 else float("nan")


def _error_columns(ds: xr.Dataset | None) -> dict[str, float]:
    if ds is None:
        return {}
    row = {}
    for name in ("nll", "c2st", "mmd", "mean_rmse", "std_rmse"):  # speed-up: the ledgers
        values = ds[name].values if name in ds else np.array([])
        if np.isfinite(values).any():
            row[f"emulator_{name}"] = _finite_mean(values)
    return row


def collect_report_data(config: StudyConfig, layout: StudyLayout) -> ReportData:
    """Read every level's scores, measured emulator error, timings and the trend file."""
    rows, scores, errors = [], {}, {}
    for unit in units(config, [*config.ladder, None]):
        level, name = unit.level, level_name(unit.level)
        ds = load_scores(layout.level(unit.name).scores)
        scores[unit.name] = ds
        error = _open(layout.level(name).emulator_error) if level is not None else None
        if error is not None:
            errors[name] = error
        row = {
            "level": name,
            "method": unit.method,
            "unit": unit.name,
            "simplification": np.nan if level is None else float(level.simplification),
            **score_summary(ds),
            **_error_columns(error),
            **unit_costs(config, layout, unit.name),
        }
        if level is not None:  # from the ledgers, not the measurement's own timing
            row["emulator_speedup"] = emulator_speedup(layout, name)
        if "emulator_nll" in ds and "emulator_nll" not in row:
            row["emulator_nll"] = _finite_mean(ds["emulator_nll"].values)
        rows.append(row)
    agreement = _open(layout.reference_agreement)
    floor = float(agreement["c2st"].mean()) if agreement is not None else float("nan")
    frame = pd.DataFrame(rows)
    frame["reference_noise_floor_c2st"] = floor
    if "c2st_mean" in frame and np.isfinite(floor):
        # a C2ST within the reference's own disagreement says nothing about the posterior
        frame["c2st_within_noise_floor"] = frame["c2st_mean"] <= floor
    quality = config.report.quality_score
    resolution = resolve_levels(frame, scores, quality, floor)
    frame[f"{quality}_se"] = frame["unit"].map(resolution.se)
    if quality != "c2st" and "c2st_mean" in frame:  # shown beside its noise floor too
        frame["c2st_se"] = [score_uncertainty(scores[unit], "c2st") for unit in frame["unit"]]
    frame["quality_step"] = frame["unit"].map(resolution.step).fillna("")
    frame["quality_resolved"] = frame["unit"].map(resolution.resolved)
    mcmc = _open(layout.reference_draws)
    first = next(iter(scores.values()))
    reference = str(first.attrs.get("reference", "exact"))
    trend = _open(layout.trend_of(config.inference.methods[0]))
    diagnostics = {}
    if mcmc is not None and "rhat" in mcmc:  # the user's samples carry no diagnostics
        diagnostics = {
            "reference_rhat": float(mcmc["rhat"].max()),
            "reference_ess": float(mcmc["ess"].min()),
        }
    return ReportData(
        frame,
        scores,
        errors,
        trend,
        reference,
        floor,
        **diagnostics,
        losses=_losses(layout, errors),
        **_reference_notes(config, layout, floor),
        reference_vs_truth=_mean_c2st(layout.reference_truth_check),
        finetune=finetune_curves(config.ladder, frame, config.report.quality_score),
        dose_response=_dose_responses(config, scores),
        **_degree_data(config, layout),
        study_costs=study_costs(layout),
        resolution=resolution,
    )


def _degree_data(config: StudyConfig, layout: StudyLayout) -> dict[str, Any]:
    """The misspecification sweep's table and knob, where the study has one."""
    if config.misspecification is None:
        return {}
    from pipelines.degree_report import degree_table
    from pipelines.units import study_simulator

    found, names = {}, {}
    for unit in units(config, [*config.ladder, None]):
        ds = _open(layout.level(unit.name).degree_scores)
        if ds is not None:
            found[unit.name] = ds
            names[unit.name] = (level_name(unit.level), unit.method)
    if not found:
        return {}
    table = degree_table(found, names, study_simulator(config))
    return {"degrees": table, "degree_knob": config.misspecification.knob}


def _mean_c2st(path: Path) -> float:
    found = _open(path)
    return float(found["c2st"].mean()) if found is not None else float("nan")


def _reference_notes(config: StudyConfig, layout: StudyLayout, floor: float) -> dict[str, str]:
    """What the reference is made of, and the warning when its own error is too large."""
    note, warning = "", ""
    kind = config.reference_kind
    if kind == "simulation" and layout.reference_checks.exists():
        record = json.loads(layout.reference_checks.read_text())
        dropped = [c for c in record["checks"] if c["status"] == "dropped"]
        retrained = [c for c in record["checks"] if c["status"] == "retrained"]
        note = (
            f"{len(record['kept'])} NPE members ({config.reference.network.density_estimator}) "
            f"trained on a true-simulator campaign of its own, {record['n_pairs']:,} runs "
            f"({record['n_pairs'] / config.budgets.train:.0f}x budgets.train), never on the "
            f"stores it judges; {len(retrained)} retrained and {len(dropped)} dropped by the "
            "training check"
            + "".join(f" (member {c['member']}: {c['reason']})" for c in dropped + retrained)
        )
    elif kind == "samples":
        note = f"draws brought by the user from {config.reference.samples} (their error unknown)"
    if np.isfinite(floor) and floor > config.reference.trust_threshold:
        warning = (
            f"The reference posterior's own error is large: its members disagree with each "
            f"other at C2ST {floor:.3f}, above the trust threshold "
            f"{config.reference.trust_threshold:g}. Absolute scores in this report are not "
            "trustworthy (a posterior can look as good as the reference it is judged "
            "against); raise reference.budget or the members' training, or use a likelihood "
            "reference where the simulator has one."
        )
    return {"reference_note": note, "reference_warning": warning}


def _losses(layout: StudyLayout, errors: dict[str, xr.Dataset]) -> list[str]:
    """What each stage lost to a failing simulator, read from the ledgers and measurements."""
    lines = []
    stores = [
        (f"simulate-{role}", layout.simulations(role)) for role in ("train", "test", "observations")
    ]
    stores += [(f"emulate {name}", layout.level(name).emulated) for name in errors]
    for stage, store in stores:
        try:
            status = open_store(store)["status"].values
        except Exception:  # noqa: BLE001 - a missing store has nothing to report
            continue
        lost = {s.name.lower(): int((status == s).sum()) for s in Status if s != Status.OK}
        lost = {name: n for name, n in lost.items() if n}
        if lost:
            why = ", ".join(f"{n} {name}" for name, n in lost.items())
            lines.append(f"{stage}: {sum(lost.values())} of {len(status)} runs lost ({why})")
    for name, error in errors.items():
        bad = int(error.attrs.get("non_finite_draws", 0))
        if bad:
            total = 2 * int(error.attrs["n_theta"]) * int(error.attrs["n_draws"])
            lines.append(
                f"emulator error of {name}: {bad} of {total} draws lost (failed, timed out or "
                "non-finite simulations, left out of the comparison)"
            )
    return lines


def _dose_responses(
    config: StudyConfig, scores: dict[str, xr.Dataset]
) -> dict[str, tuple[str, Any]]:
    """Each sweep's dose-response of the quality score (the NPE units of its levels)."""
    from inference.dose_response import dose_response
    from pipelines.sweeps import knob_values

    name = config.report.quality_score
    curves = {}
    for sweep in config.sweeps:
        values = knob_values(sweep)
        levels = [level for level in values if level in scores and name in scores[level]]
        if len(levels) < 4:
            continue  # a trend from fewer than 4 levels is not stated
        blocks = [scores[level][name].squeeze("level", drop=True) for level in levels]
        per_level = np.stack([replicate_by_observation(block) for block in blocks])
        knob = np.array([values[level] for level in levels], dtype=float)
        curve = dose_response(knob, per_level, config.report.quality_target, seed=config.seed)
        curves[sweep.name] = (sweep.knob, curve)
    return curves


def replicate_by_observation(values: xr.DataArray) -> np.ndarray:
    """A score as ``(replicate, observation)``: observation-wise scores kept, others averaged."""
    other = [d for d in values.dims if d not in ("replicate", "observation")]
    values = values.astype(float).mean(dim=other) if other else values.astype(float)
    if "observation" not in values.dims:
        values = values.expand_dims(observation=[0], axis=-1)
    return values.transpose("replicate", "observation").values
