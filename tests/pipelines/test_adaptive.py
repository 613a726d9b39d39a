"""`emustudy run --target`: bisection over a sweep's levels for the crossing of the target."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import yaml
from cli_process import reduced_control, run_cli

from pipelines.adaptive import bisect_levels

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("n", [1, 2, 6, 8, 15])
def test_bisection_finds_every_crossing_in_log2_probes(n):
    for first in range(n + 1):  # levels first..n-1 meet the target
        calls = []

        def meets(i: int, first: int = first, calls: list = calls) -> bool:
            calls.append(i)
            return i >= first

        probed, fails, found = bisect_levels(n, meets)
        assert (fails, found) == (first - 1, first)
        assert probed == calls and len(set(probed)) == len(probed)
        assert len(probed) <= math.ceil(math.log2(n + 1))


def test_target_without_a_sweep_is_refused_before_anything_runs(tmp_path):
    raw = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "studies")
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(raw))
    found = run_cli("run", str(path), "--target", timeout=120)
    assert found.returncode == 2
    assert "the ladder has no `- sweep:" in found.stderr and "without --target" in found.stderr
    assert not (tmp_path / "studies").exists()


@pytest.mark.slow
def test_target_runs_log2_levels_and_a_later_run_reuses_them(tmp_path):
    path = reduced_control(tmp_path)
    ran = run_cli("run", str(path), "--target", "--quiet")
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "core-s saved against the full sweep" in ran.stdout
    study = tmp_path / "studies" / "control"
    (sweep,) = json.loads((study / "report" / "adaptive.json").read_text())["sweeps"]
    probed = {probe["level"] for probe in sweep["probes"]}
    assert len(probed) == 3  # ceil(log2(6 + 1)) of 6 levels
    names = sorted((study / "levels").iterdir())
    assert {p.name for p in names} == probed and not (study / "ceiling").exists()
    assert {sweep["fails_level"], sweep["meets_level"]} <= probed  # both ends were measured
    knobs = [60, 121, 244, 492, 992, 2000]
    assert abs(knobs.index(sweep["bracket"][1]) - knobs.index(sweep["bracket"][0])) == 1
    low, high = sorted(sweep["bracket"])
    assert low <= sweep["crossing"] <= high
    kept = {p.name: (p / "posterior.pt").stat().st_mtime_ns for p in names}
    assert run_cli("run", str(path), "--target", "--quiet").returncode == 0
    assert {
        name: (study / "levels" / name / "posterior.pt").stat().st_mtime_ns for name in kept
    } == kept
