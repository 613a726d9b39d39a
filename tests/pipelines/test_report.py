"""The report: every figure renders in a real headless Chromium; the frontier picks right."""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib import image

from pipelines import figures
from pipelines.layout import StudyLayout
from pipelines.report import trend_sentence

pytestmark = pytest.mark.slow

EXPECTED_FIGURES = {
    "c2st_vs_level",
    "nltp_vs_level",
    "sbc_min_pvalue_vs_level",
    "pair_plot",
    "sbc_histograms",
    "coverage_curves",
    "cost_quality_frontier",
}


def _chromium(binary: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_figure_renders_in_headless_chromium(quickstart_study, chromium, tmp_path):
    config, _ = quickstart_study
    index = StudyLayout(config.study_dir).report / "index.html"
    dom = _chromium(chromium, "--virtual-time-budget=10000", "--dump-dom", index.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    rendered = dict(
        re.findall(r'<img[^>]*id="fig-([\w-]+)"[^>]*data-rendered="([^"]+)"', dom.stdout)
    )
    figures_in_page = set(re.findall(r'id="fig-([\w-]+)"', dom.stdout))
    assert EXPECTED_FIGURES <= figures_in_page, EXPECTED_FIGURES - figures_in_page
    assert set(rendered) == figures_in_page, figures_in_page - set(rendered)
    broken = {name: size for name, size in rendered.items() if not re.fullmatch(r"\d+x\d+", size)}
    assert not broken, broken
    assert all(int(size.split("x")[0]) >= 300 for size in rendered.values()), rendered

    screenshot = tmp_path / "report.png"
    shot = _chromium(
        chromium, f"--screenshot={screenshot}", "--window-size=1280,2400", index.as_uri()
    )
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    pixels = image.imread(screenshot)
    assert pixels.shape[0] == 2400 and pixels.std() > 0.05  # not a blank page
    print(f"screenshot saved to {screenshot}")


def test_the_report_is_self_contained(quickstart_study):
    config, _ = quickstart_study
    page = (StudyLayout(config.study_dir).report / "index.html").read_text()
    sources = re.findall(r'src="([^"]+)"', page)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    assert "http://" not in page and "https://" not in page


def test_scores_csv_holds_intervals_and_costs(quickstart_study):
    config, _ = quickstart_study
    table = pd.read_csv(StudyLayout(config.study_dir).report / "scores.csv").set_index("level")
    assert list(table.index) == ["full", "reduced", "crude", "ceiling"]
    assert (table["c2st_lo"] <= table["c2st_mean"]).all()
    assert (table["c2st_mean"] <= table["c2st_hi"]).all()
    assert (table["replicates"] == config.inference.replicates).all()
    assert (table["total_core_hours"] > 0).all()
    # a level trained on fewer simulator runs consumed fewer simulator core-hours
    assert table.loc["crude", "simulator_core_hours"] < table.loc["full", "simulator_core_hours"]


def _table(c2st: list[float], hours: list[float]) -> pd.DataFrame:
    names = [f"l{i}" for i in range(len(c2st) - 1)] + ["ceiling"]
    return pd.DataFrame(
        {
            "level": names,
            "simplification": [*range(len(c2st) - 1), np.nan],
            "c2st_mean": c2st,
            "c2st_lo": c2st,
            "c2st_hi": c2st,
            "total_core_hours": hours,
        }
    )


def test_the_frontier_marks_the_cheapest_level_meeting_the_target():
    table = _table([0.55, 0.58, 0.7, 0.52], [4.0, 1.0, 0.1, 5.0])
    _, chosen = figures.cost_quality_frontier(table, "c2st", "C2ST", 0.6, lower_is_better=True)
    assert chosen == "l1"
    _, none = figures.cost_quality_frontier(table, "c2st", "C2ST", 0.5, lower_is_better=True)
    assert none is None  # only the ceiling would meet it, and it is not an emulator level


def test_the_trend_sentence_reads_the_fitted_slope_and_its_bootstrap_interval():
    from inference.trend import fit_trend, score_trends

    error = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    score = 0.5 + 0.42 * error + np.array([0.01, -0.01, 0.0, 0.01, -0.01])
    levels = [f"l{i}" for i in range(5)]
    trend = score_trends(
        xr.Dataset({"c2st": ("level", score)}, coords={"level": levels}),
        xr.Dataset({"c2st": ("level", error)}, coords={"level": levels}),
    )
    sentence = trend_sentence(trend)
    fit = fit_trend(error, score)
    assert (
        fit["slope_low"] < 0.42 < fit["slope_high"] and fit["slope_high"] - fit["slope_low"] < 0.3
    )
    assert f"rises by {fit['slope']:.3g}, 95 % bootstrap interval" in sentence
    assert "ρ = 1.00 over 5 levels" in sentence


def test_no_trend_is_stated_from_three_levels():
    from inference.trend import score_trends

    levels = ["a", "b", "c"]
    trend = score_trends(
        xr.Dataset({"c2st": ("level", [0.6, 0.7, 0.8])}, coords={"level": levels}),
        xr.Dataset({"c2st": ("level", [0.5, 0.7, 0.9])}, coords={"level": levels}),
    )
    assert float(trend["slope"].sel(score="c2st", error="c2st")) == pytest.approx(0.5)
    sentence = trend_sentence(trend)
    assert "No trend" in sentence and "3 levels have both, 4 are needed" in sentence


def test_a_level_without_a_density_is_reported_without_numpy_warnings(quickstart_study, tmp_path):
    """A reduced simulator or a noisy perturbed emulator has no density: its NLL is NaN at every
    test pair. Averaging it warned "Mean of empty slice" (issue 15); now it is NaN, quietly."""
    from pipelines.report import write_report
    from pipelines.report_data import collect_report_data

    config, _ = quickstart_study
    shutil.copytree(config.study_dir, tmp_path / config.name)
    copy = config.model_copy(update={"output_dir": tmp_path})
    layout = StudyLayout(copy.study_dir)
    crude = layout.level("crude")
    for path, name in ((crude.emulator_error, "nll"), (crude.scores, "emulator_nll")):
        ds = xr.open_zarr(path).load()
        ds[name] = ds[name] * np.nan
        shutil.rmtree(path)
        ds.to_zarr(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        data = collect_report_data(copy, layout)
        write_report(
            data,
            tmp_path / "report",
            "no density",
            quality_score=copy.report.quality_score,
            quality_target=copy.report.quality_target,
        )
    table = data.table.set_index("level")
    assert np.isnan(table.loc["crude", "emulator_nll"])
    assert np.isfinite(table.loc["full", "emulator_nll"])
