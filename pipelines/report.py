"""The study report: ``index.html`` (self-contained, readable offline), ``scores.csv``, figures.

Built from the study folder alone (:mod:`pipelines.report_data`), so it can be rebuilt without
recomputing anything: every score against the level and against the measured emulator error
with intervals over replicates, pair plots of each level's posterior over the reference, SBC
rank histograms and coverage curves, and the cost-quality frontier with the cheapest level that
meets the study's quality target.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from inference.score_table import score_spec
from inference.trend import MIN_TREND_LEVELS
from pipelines import figures
from pipelines.finetune import finetune_section
from pipelines.layout import CEILING
from pipelines.report_data import SUMMARY_SCORES, ReportData

__all__ = ["write_report", "trend_sentence"]

# Marks each figure once the browser decoded it (data-rendered="WxH" or "broken"), so a
# headless-browser test, or a reader, can tell a figure that did not render.
_RENDER_CHECK = """<script>
for (const img of document.querySelectorAll("img.figure")) {
  const mark = () => { img.dataset.rendered = img.naturalWidth > 0
    ? img.naturalWidth + "x" + img.naturalHeight : "broken"; };
  if (img.complete) mark(); else { img.onload = mark; img.onerror = mark; }
}
</script>"""
_STYLE = """body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:90%}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:right}th{background:#f3f3f3}figure{display:inline-block;margin:1em;vertical-align:top}
figcaption{font-size:85%;max-width:560px}.note{color:#555;font-size:90%}
.warning{background:#fff3cd;border:1px solid #d39e00;padding:.6em}"""
_TABLE_COLUMNS = {
    "level": "level",
    "method": "method",
    "simplification": "simpl.",
    "c2st_mean": "C2ST",
    "c2st_se": "C2ST SE",
    "c2st_vs_truth_mean": "C2ST vs exact",
    "mmd_mean": "MMD²",
    "mmd_se": "MMD² SE",
    "nltp_mean": "NLTP",
    "nltp_se": "NLTP SE",
    "sbc_min_pvalue_mean": "SBC min p",
    "tarp_atc_mean": "TARP ATC",
    "lc2st_rejection_share_mean": "L-C2ST reject",
    "misspecification_detected_mean": "misspec. flagged",
    "emulator_nll": "emu. NLL",
    "emulator_c2st": "emu. C2ST",
    "emulator_mmd": "emu. MMD²",
    "emulator_speedup": "speed-up",
    "total_core_hours": "core-h",
    "replicates": "reps",
    "quality_step": "quality step",
    "quality_resolved": "resolved",
}


class _Page:
    def __init__(self, figures_dir: Path) -> None:
        self.figures_dir = figures_dir
        self.blocks: list[str] = []

    def figure(self, name: str, png: bytes, caption: str) -> None:
        (self.figures_dir / f"{name}.png").write_bytes(png)
        encoded = base64.b64encode(png).decode()
        self.blocks.append(
            f'<figure><img class="figure" id="fig-{name}" alt="{html.escape(caption)}" '
            f'src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    def heading(self, text: str, note: str = "") -> None:
        self.blocks.append(f"<h2>{html.escape(text)}</h2>")
        if note:
            self.blocks.append(f'<p class="note">{html.escape(note)}</p>')


def trend_sentence(trend: xr.Dataset | None, score: str = "c2st", error: str = "c2st") -> str:
    """ "posterior C2ST rises by ... per unit of emulator ... (Spearman rho ...)", or ''."""
    cell = _trend_cell(trend, score, error)
    if cell is None:
        return ""
    slope, rho = float(cell["slope"]), float(cell["spearman_rho"])
    n_levels = int(cell["n_levels"])
    if n_levels < MIN_TREND_LEVELS:
        return (
            f"No trend of posterior {score.upper()} against emulator {error.upper()} is stated: "
            f"{n_levels} levels have both, {MIN_TREND_LEVELS} are needed."
        )
    if not np.isfinite(slope):
        return ""
    verb = "rises" if slope >= 0 else "falls"
    low = float(cell["slope_low"]) if "slope_low" in cell else float("nan")
    high = float(cell["slope_high"]) if "slope_high" in cell else float("nan")
    interval = f", 95 % bootstrap interval {low:.3g} to {high:.3g}" if np.isfinite(low) else ""
    return (
        f"Posterior {score.upper()} {verb} by {abs(slope):.3g}{interval} per unit of measured "
        f"emulator {error.upper()} (Spearman ρ = {rho:.2f} over {n_levels} levels)."
    )


def _format(value: object) -> str:
    if isinstance(value, float):
        if not np.isfinite(value):
            return "–"
        return f"{value:.3g}" if abs(value) >= 1000 or abs(value) < 0.01 else f"{value:.3f}"
    return html.escape(str(value))


def _table_html(table: pd.DataFrame) -> str:
    columns = [c for c in _TABLE_COLUMNS if c in table and table[c].notna().any()]
    head = "".join(f"<th>{html.escape(_TABLE_COLUMNS[c])}</th>" for c in columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_format(row[c])}</td>" for c in columns) + "</tr>"
        for _, row in table.iterrows()
    )
    return f"<table><tr>{head}</tr>{rows}</table>"


def _pair_draws(data: ReportData) -> tuple[dict[str, np.ndarray], np.ndarray, list[str]] | None:
    draws, reference, names = {}, None, []
    for name, ds in data.scores.items():
        if "pair_draws" not in ds:
            continue
        draws[name] = figures.first_replicate(ds["pair_draws"]).values
        names = [str(p) for p in ds["param"].values]
        if reference is None and "reference_draws" in ds:
            reference = figures.first_replicate(ds["reference_draws"]).values
    if not draws or reference is None:
        return None
    return draws, reference, names


def write_report(
    data: ReportData,
    out_dir: Path,
    title: str,
    *,
    quality_score: str = "c2st",
    quality_target: float = 0.6,
) -> Path:
    """Write ``scores.csv``, ``figures/*.png`` and a self-contained ``index.html``.

    Returns
    -------
    Path
        The ``index.html`` written.
    """
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    for old in figures_dir.glob("*.png"):
        old.unlink()
    table = data.table
    table.to_csv(out_dir / "scores.csv", index=False)
    page = _Page(figures_dir)
    summary: list[str] = []
    _quality_sections(page, data, summary)
    summary += finetune_section(page, data.finetune, table, quality_score)
    summary += _dose_response_section(page, data, quality_score, quality_target)
    summary += _degree_section(page, data, out_dir)
    summary += _cost_section(page, table, quality_score, quality_target)
    summary += _study_cost_sentence(data.study_costs, table)
    summary += _resolution_sentence(data, quality_score)
    summary.append(_reference_sentence(data))
    if data.losses:
        summary.append("Rows lost to the simulator: " + "; ".join(data.losses) + ".")
    invalid = max((int(ds["n_invalid_test"].max()) for ds in data.scores.values()), default=0)
    if invalid:
        summary.append(f"Held-out pairs dropped from scoring for failed simulations: {invalid}.")
    lost = [
        float(ds["ppc_failed_share"].mean())
        for ds in data.scores.values()
        if "ppc_failed_share" in ds
    ]
    if lost and max(lost) > 0:
        summary.append(
            "Posterior predictive checks: up to "
            f"{max(lost):.1%} of their true-simulator runs failed or timed out (left out)."
        )
    return _write_page(out_dir, title, table, page, summary, data.reference_warning)


def _resolution_sentence(data: ReportData, quality_score: str) -> list[str]:
    """How many ladder levels the quality score tells apart beyond the study's uncertainty."""
    found = data.resolution
    if found is None or not found.resolved:
        return []
    apart = [unit for unit, ok in found.resolved.items() if ok]
    return [
        f"{quality_score.upper()} resolves {len(apart)} of {len(found.resolved)} levels from "
        f"every other level (a difference above {found.margin_note}; column 'resolved')"
        + (f": {', '.join(apart)}." if apart else ".")
    ]


def _reference_sentence(data: ReportData) -> str:
    """What the scores are judged against, and that reference's own error."""
    sentence = _reference_made(data)
    if np.isfinite(data.reference_vs_truth):
        sentence += (
            " Checked against the simulator's exact posterior, the reference is at C2ST "
            f"{data.reference_vs_truth:.3f} from it; column 'C2ST vs exact' scores every "
            "posterior against the exact posterior too."
        )
    return sentence


def _reference_made(data: ReportData) -> str:
    if np.isfinite(data.noise_floor):
        within = data.table.get("c2st_within_noise_floor")
        flagged = [] if within is None else list(data.table.loc[within.fillna(False), "unit"])
        made = f": {data.reference_note}" if data.reference_note else ""
        return (
            f"Reference posterior: a {data.reference} reference{made}. Its members agree with "
            f"each other at C2ST {data.noise_floor:.3f}, the reference's own error and the "
            "noise floor of every C2ST in this report"
            + (f"; within it (not resolved): {', '.join(flagged)}." if flagged else ".")
        )
    if data.reference == "samples":
        return f"Reference posterior: {data.reference_note}."
    if np.isfinite(data.reference_rhat):
        return (
            "Reference posterior: MCMC on the simulator's own likelihood (sbi's slice sampler), "
            f"largest split R-hat {data.reference_rhat:.3f}, smallest effective sample size "
            f"{data.reference_ess:.0f}; runs failing R-hat <= 1.05 or ESS >= 400 are refused."
        )
    return "Reference posterior: the simulator's exact posterior (no reference error)."


def _quality_sections(page: _Page, data: ReportData, summary: list[str]) -> None:
    """Scores against the level and the measured error, pair plots, calibration."""
    table = data.table
    page.heading("Posterior quality against the declared level")
    for score, (_, label, lower) in SUMMARY_SCORES.items():
        if f"{score}_mean" not in table or table[f"{score}_mean"].isna().all():
            continue
        hint = "" if lower is None else (" (lower is better)" if lower else " (higher is better)")
        page.figure(f"{score}_vs_level", figures.score_vs_level(table, score, label), label + hint)

    errors = [c for c in ("emulator_c2st", "emulator_nll", "emulator_mmd") if c in table]
    errors = [c for c in errors if table[c].notna().sum() >= 2]
    if errors:
        page.heading(
            "Posterior quality against the measured emulator error",
            "Each level's emulator measured against held-out true-simulator pairs.",
        )
        # C2ST against every measured error; the other scores against the first one only.
        pairs = [("c2st", e) for e in errors] + [(s, errors[0]) for s in ("nltp", "mmd")]
        for score, error in pairs:
            if f"{score}_mean" not in table:
                continue
            name = error.removeprefix("emulator_")
            fit = _fit(data.trend, score, name)
            sentence = trend_sentence(data.trend, score, name)
            page.figure(
                f"{score}_vs_emulator_{name}",
                figures.score_vs_emulator_error(
                    table, score, error, SUMMARY_SCORES[score][1], *fit
                ),
                sentence or f"posterior {score} against emulator {name}",
            )
            if score == "c2st" and sentence:
                summary.append(sentence)

    pairs = _pair_draws(data)
    if pairs is not None:
        draws, reference, names = pairs
        page.heading("Posteriors at one observation", "Grey: the reference posterior.")
        page.figure(
            "pair_plot",
            figures.pair_plot(draws, reference, names),
            "pairwise marginals of each level's posterior (colours) over the reference (grey)",
        )
    if any("sbc_rank" in ds for ds in data.scores.values()):
        page.heading("Calibration on held-out true-simulator pairs")
        page.figure(
            "sbc_histograms",
            figures.sbc_histograms(data.scores),
            "SBC rank histograms (grey band: 99 % range of a uniform bin)",
        )
    if any("hpd_coverage" in ds or "tarp_ecp" in ds for ds in data.scores.values()):
        page.figure(
            "coverage_curves",
            figures.coverage_curves(data.scores),
            "expected coverage against credibility (diagonal: calibrated)",
        )


def _dose_response_section(
    page: _Page, data: ReportData, quality_score: str, quality_target: float
) -> list[str]:
    """One curve per sweep of the config: the first method's score against the knob."""
    spec = score_spec(quality_score)
    sentences = []
    for sweep, (knob, curve) in data.dose_response.items():
        page.heading(
            f"Dose-response: {quality_score} against {knob} (sweep {sweep!r})",
            "Means over replicates and observations with bootstrap intervals, an isotonic fit "
            "(monotone, no shape assumed), and where it crosses the quality target.",
        )
        page.figure(
            f"dose_response_{sweep}", figures.dose_response_curve(curve, knob, spec.label), ""
        )
        if np.isfinite(curve.crossing):
            sentences.append(
                f"Sweep {sweep!r}: {quality_score} crosses {quality_target:g} at {knob} = "
                f"{curve.crossing:.3g} ({curve.confidence:.0%} interval {curve.crossing_low:.3g}"
                f" to {curve.crossing_high:.3g}; {curve.crossing_share:.0%} of bootstrap fits "
                "cross)."
            )
        else:
            sentences.append(f"Sweep {sweep!r}: {quality_score} never crosses {quality_target:g}.")
    return sentences


def _degree_section(page: _Page, data: ReportData, out_dir: Path) -> list[str]:
    """The misspecification sweep: ``misspecification.csv`` and each score against the degree."""
    from pipelines.degree_report import degree_figures

    table = data.degrees
    if table is None or table.empty:
        return []
    table.to_csv(out_dir / "misspecification.csv", index=False)
    knob = data.degree_knob
    page.heading(
        f"Misspecification: scores against {knob}",
        "Each unit's posteriors at observations made at every degree (the same true parameters "
        "theta0 throughout); bars: 95 % bootstrap intervals over observations; dashed: "
        "the ceiling (true-simulator data); thick grey: the exact posterior of the assumed model, "
        "analytic (where the simulator gives it). All values are in misspecification.csv.",
    )
    for name, png, caption in degree_figures(table, knob):
        page.figure(name, png, caption)
    worst = table.loc[table["degree"] == table["degree"].max()]
    shown = ", ".join(f"{row.unit} {row.coverage_90:.2f}" for row in worst.itertuples())
    values = ", ".join(f"{d:g}" for d in sorted(set(table["degree"])))
    top = table["degree"].max()
    return [
        f"Misspecification sweep over {knob} = {values}: coverage of theta0 by the 90 % HPD "
        f"region at {knob} = {top:g}: {shown}."
    ]


def _cost_section(
    page: _Page, table: pd.DataFrame, quality_score: str, quality_target: float
) -> list[str]:
    """The cost-quality frontier; the sentence naming the cheapest unit meeting the target."""
    chosen, summary = None, []
    column = score_spec(quality_score).csv_column
    if f"{column}_mean" in table and "total_core_hours" in table:
        lower = SUMMARY_SCORES[column][2] is not False
        label = SUMMARY_SCORES[column][1]
        png, chosen = figures.cost_quality_frontier(table, column, label, quality_target, lower)
        page.heading(
            "Cost and quality",
            "Cost: the true-simulator runs a level consumed (seconds per run from the campaigns' "
            "ledgers) plus the core seconds of training its emulator, emulating, measuring its "
            "error and training its posteriors (waiting for other tasks is not counted).",
        )
        page.figure("cost_quality_frontier", png, f"{label} against cost")
        summary.append(
            f"Cheapest level meeting the quality target ({quality_score} "
            f"{'≤' if lower else '≥'} {quality_target:g}): {chosen}."
            if chosen
            else f"No emulator level meets the quality target ({quality_score} {quality_target:g})."
        )
    return summary


def _study_cost_sentence(costs: dict[str, float], table: pd.DataFrame) -> list[str]:
    """The study's own core-hours beside the levels': its campaigns, reference and scoring."""
    scoring = float(np.nansum(table["score_s"])) if "score_s" in table else float("nan")
    parts = {name.removesuffix("_s"): value for name, value in costs.items()}
    parts["scoring (all units)"] = scoring
    shown = [f"{name} {value / 3600:.3g}" for name, value in parts.items() if np.isfinite(value)]
    if not shown:
        return []
    return ["Study-wide core-hours (not in any level's cost): " + ", ".join(shown) + "."]


def _write_page(
    out_dir: Path,
    title: str,
    table: pd.DataFrame,
    page: _Page,
    summary: list[str],
    warning: str = "",
) -> Path:
    ceiling = table[table["level"] == CEILING]
    intro = (
        "Posteriors trained on emulator data at each fidelity level, scored against the truth; "
        "the ceiling is the same posterior budget trained on true-simulator data. Intervals span "
        f"the training replicates ({int(ceiling['replicates'].iloc[0]) if len(ceiling) else 1} "
        "per level)."
    )
    summary_html = "".join(f"<li>{html.escape(s)}</li>" for s in summary)
    document = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>{_STYLE}</style></head><body>
<h1>{html.escape(title)}</h1>
{f'<p class="warning"><strong>Warning:</strong> {html.escape(warning)}</p>' if warning else ""}
<p>{html.escape(intro)}</p>
<ul>{summary_html}</ul>
<h2>Scores</h2>
{_table_html(table)}
<p class="note">All columns are in scores.csv beside this page.</p>
{"".join(page.blocks)}
{_RENDER_CHECK}
</body></html>
"""
    index = out_dir / "index.html"
    temporary = index.with_suffix(".tmp")
    temporary.write_text(document)
    temporary.replace(index)
    return index


def _trend_cell(trend: xr.Dataset | None, score: str, error: str) -> xr.Dataset | None:
    if trend is None or score not in trend["score"] or error not in trend["error"]:
        return None
    return trend.sel(score=score, error=error)


def _fit(trend: xr.Dataset | None, score: str, error: str) -> tuple[float | None, float | None]:
    cell = _trend_cell(trend, score, error)
    return (None, None) if cell is None else (float(cell["slope"]), float(cell["intercept"]))
