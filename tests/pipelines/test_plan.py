"""``emustudy plan``: predicted quality from emulator error, checked against the full run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_process import reduced_control, run_cli

from pipelines.config import load_config
from pipelines.layout import StudyLayout
from pipelines.plan import choose_anchors
from pipelines.report_data import collect_report_data
from simulators.errors import ConfigError


def test_anchors_span_the_error_range_and_keep_what_is_scored():
    errors = {f"l{i}": e for i, e in enumerate([0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4])}
    # by error: l1 .1, l5 .2, l3 .3, l7 .4, l2 .5, l4 .7, l6 .8, l0 .9; ranks 0, 2, 5, 7
    assert choose_anchors(errors, [], 4) == ["l1", "l3", "l4", "l0"]
    assert choose_anchors(errors, ["l7"], 3) == ["l1", "l7", "l2", "l0"]
    with pytest.raises(ConfigError, match=r"--anchors 2: .* between 3 and the 8 levels"):
        choose_anchors(errors, [], 2)


def test_bad_anchors_are_refused_before_anything_runs(tmp_path):
    found = run_cli("plan", str(reduced_control(tmp_path)), "--anchors", "9", timeout=120)
    assert found.returncode == 2
    assert "--anchors 9" in found.stdout + found.stderr and "pass --anchors 6" in found.stderr
    assert not (tmp_path / "studies").exists()


@pytest.mark.slow
@pytest.mark.acceptance  # 3 min: the suite keeps to 20 minutes (make acceptance runs it)
def test_the_plans_crossing_interval_covers_the_crossing_the_full_run_measures(tmp_path):
    config_path = reduced_control(tmp_path)
    planned = run_cli("plan", str(config_path), "--quiet")
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert "predicted to cross 0.65 at emulator.train_samples" in planned.stdout
    config = load_config(config_path)
    layout = StudyLayout(config.study_dir)
    plan = json.loads((layout.report / "plan.json").read_text())
    names = [level.name for level in config.ladder]
    anchors = plan["anchors"]
    assert len(anchors) == 4 and {names[0], names[-1]} & set(anchors)
    # only the anchors' posteriors were paid for; every level's emulator error is measured
    assert [layout.level(n).posterior.exists() for n in names] == [n in anchors for n in names]
    assert all(np.isfinite(row["emulator_error"]) for row in plan["levels"])
    assert all(row["core_seconds"] > 0 for row in plan["levels"])
    kept = {n: layout.level(n).emulator.stat().st_mtime_ns for n in names}
    kept |= {f"{n}/posterior": layout.level(n).posterior.stat().st_mtime_ns for n in anchors}
    assert not (layout.report / "index.html").exists()  # the plan writes no report

    ran = run_cli("run", str(config_path), "--quiet")
    assert ran.returncode == 0, ran.stderr[-3000:]
    # the run reused the plan's emulators and anchor posteriors, untouched
    now = {n: layout.level(n).emulator.stat().st_mtime_ns for n in names}
    now |= {f"{n}/posterior": layout.level(n).posterior.stat().st_mtime_ns for n in anchors}
    assert now == kept
    _, measured = collect_report_data(config, layout).dose_response["data"]
    predicted = plan["crossings"]["data"]
    assert np.isfinite(measured.crossing)
    assert np.isfinite(predicted["low"]) and np.isfinite(predicted["high"])
    assert predicted["low"] <= measured.crossing <= predicted["high"]
    assert json.loads((layout.report / "plan.json").read_text()) == plan  # not overwritten
