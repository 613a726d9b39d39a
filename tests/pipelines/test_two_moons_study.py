"""The shipped two-moons study, scored against a `simulation` reference: its reported C2ST must
agree with C2ST against the exact posterior, which the study measures beside it.

The test runs ``configs/two_moons.yaml`` through ``emustudy run`` with fewer levels, replicates
and observations; the reference, the budgets and the estimators are the shipped ones. A cheaper
reference (5,000 runs, 3-transform members at learning rate 1e-3) was 0.55 C2ST from the exact
posterior yet let the ceiling's reported C2ST sit 0.125 below its C2ST against the truth (0.573
against 0.699): a reference's own distance to the truth does not bound how far scores against
it stray, so the shipped reference is what is tested. The whole config was run to the end for
the README's figures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from inference.scores import load_scores
from pipelines.layout import StudyLayout

# about 8 minutes on 2 cores (the reference's 3 members on 10,000 runs are most of it): outside
# the 20-minute suite, run by `make acceptance`
pytestmark = [pytest.mark.slow, pytest.mark.acceptance]

ROOT = Path(__file__).parents[2]


def test_reported_c2st_agrees_with_c2st_against_the_exact_posterior(tmp_path):
    raw = yaml.safe_load((ROOT / "configs" / "two_moons.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "studies")
    raw["ladder"] = [level for level in raw["ladder"] if level["name"] in ("full", "crude")]
    raw["budgets"].update(test=100, observations=3)
    raw["inference"]["replicates"] = 1
    raw["scores"].update(sbc_samples=30, ppc_samples=10, lc2st_null=5)
    raw["cluster"]["overrides"]["dashboard_address"] = "127.0.0.1:0"
    path = tmp_path / "two_moons.yaml"
    path.write_text(yaml.safe_dump(raw))
    log = tmp_path / "log.txt"
    with log.open("w") as out:  # stdout is a file: progress as plain lines
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "run", str(path)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=900,
        )
    text = log.read_text()
    assert done.returncode == 0, text[-4000:]
    assert "\r" not in text and "reference: kept 3 of 3 members" in text
    layout = StudyLayout(tmp_path / "studies" / "two_moons")
    table = pd.read_csv(layout.report / "scores.csv").set_index("unit")
    print(table[["c2st_mean", "c2st_vs_truth_mean", "reference_noise_floor_c2st"]])
    gap = (table["c2st_mean"] - table["c2st_vs_truth_mean"]).abs()
    assert (gap <= 0.05).all(), gap
    # the posteriors differ (a good and a crude level), so agreement is not trivial
    assert table.loc["crude", "c2st_mean"] - table.loc["full", "c2st_mean"] > 0.2
    truth_check = float(load_scores(layout.reference_truth_check)["c2st"].mean())
    assert truth_check <= 0.55, truth_check
    assert load_scores(layout.level("ceiling").scores).attrs["reference"] == "simulation"
    page = (layout.report / "index.html").read_text()
    assert f"the reference is at C2ST {truth_check:.3f} from it" in page
    assert "No trend of posterior C2ST" in page  # two levels: no trend is stated
