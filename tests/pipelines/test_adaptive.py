"""`emustudy run --target`: bisection over a sweep's levels for the crossing of the target."""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import yaml
from cli_process import reduced_control, run_cli

from cluster.jobs import SubmitResources
from pipelines.adaptive import Probe, _result, bisect_levels, next_probe, verdict
from pipelines.config import load_config
from pipelines.layout import StudyLayout
from pipelines.submit import reopen_unmeasured_errors, write_pipeline_scripts

ROOT = Path(__file__).parents[2]


def _judge(first_undecided: int, first_meeting: int) -> Callable[[int], str]:
    """Levels below ``first_undecided`` fail, from ``first_meeting`` on meet, between: undecided."""

    def judge(i: int) -> str:
        return "fails" if i < first_undecided else "meets" if i >= first_meeting else "undecided"

    return judge


@pytest.mark.parametrize("n", [1, 2, 6, 8, 15])
def test_bisection_finds_every_crossing_in_log2_probes(n):
    for first in range(n + 1):  # levels first..n-1 meet the target
        probed, verdicts = bisect_levels(n, _judge(first, first))
        fails = max((i for i, v in verdicts.items() if v == "fails"), default=-1)
        meets = min((i for i, v in verdicts.items() if v == "meets"), default=n)
        assert (fails, meets) == (first - 1, first)
        assert len(set(probed)) == len(probed) <= math.ceil(math.log2(n + 1))


@pytest.mark.parametrize("n", [3, 8, 15])
def test_an_undecided_band_is_bracketed_by_decided_levels_on_both_sides(n):
    for low in range(n + 1):
        for high in range(low, n + 1):  # levels low..high-1 hold the target in their interval
            probed, verdicts = bisect_levels(n, _judge(low, high))
            fails = max((i for i, v in verdicts.items() if v == "fails"), default=-1)
            meets = min((i for i, v in verdicts.items() if v == "meets"), default=n)
            assert (fails, meets) == (low - 1, high), (low, high, probed)
            assert len(set(probed)) == len(probed) <= 2 * math.ceil(math.log2(n + 1))
            assert next_probe(n, verdicts) is None


def test_levels_judged_before_are_not_run_again_and_a_non_monotone_sweep_stops():
    judge = _judge(3, 3)
    known = {2: "fails", 4: "meets"}
    probed, verdicts = bisect_levels(8, judge, known)
    assert probed == [3] and verdicts[3] == "meets"
    assert next_probe(8, {2: "meets", 5: "fails"}) is None
    probe = partial(Probe, spread=0.01, core_seconds=1.0)
    probes = {
        2: probe("b", 20.0, 0.6, verdict="meets"),
        5: probe("e", 50.0, 0.7, verdict="fails"),
    }
    found = _result("s", "k", list("abcdefgh"), probes, 0.65)
    assert not found.monotone and (found.fails_level, found.meets_level) == ("e", "b")


def test_verdict_uses_the_interval_and_the_score_direction():
    assert verdict(0.60, 0.02, 0.65, lower_is_better=True) == "meets"
    assert verdict(0.70, 0.02, 0.65, lower_is_better=True) == "fails"
    assert verdict(0.66, 0.02, 0.65, lower_is_better=True) == "undecided"
    assert verdict(0.60, 0.02, 0.65, lower_is_better=False) == "fails"
    assert verdict(0.65, 0.0, 0.65, lower_is_better=True) == "undecided"
    assert verdict(float("nan"), 0.0, 0.65, lower_is_better=True) == "undecided"


def test_the_crossing_is_interpolated_between_the_probes_that_straddle_the_target():
    probe = partial(Probe, core_seconds=1.0)
    probes = {
        1: probe("b", 100.0, 0.80, 0.02, "fails"),
        3: probe("d", 300.0, 0.66, 0.03, "undecided"),
        4: probe("e", 400.0, 0.62, 0.02, "meets"),
    }
    found = _result("s", "k", list("abcdef"), probes, 0.65)
    assert (found.fails_level, found.meets_level, found.undecided) == ("b", "e", ["d"])
    assert found.bracket == (100.0, 400.0)
    assert found.crossing == pytest.approx(300 + 0.25 * 100)
    assert found.core_seconds == 3.0


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
    names = sorted((study / "levels").iterdir())
    assert {p.name for p in names} == probed and not (study / "ceiling").exists()
    assert 3 <= len(probed) <= 5  # ceil(log2(6 + 1)) of 6, more where levels are undecided
    assert {sweep["fails_level"], sweep["meets_level"]} <= probed  # both ends were measured
    knobs = [60, 121, 244, 492, 992, 2000]
    ends = [knobs.index(end) for end in sweep["bracket"]]
    between = {probe["level"]: probe["verdict"] for probe in sweep["probes"]}
    inside = [knob for knob in knobs[ends[0] + 1 : ends[1]]]
    assert all(between.get(f"data-{knob}") == "undecided" for knob in inside)
    low, high = sorted(sweep["bracket"])
    assert low <= sweep["crossing"] <= high
    # the verdicts read posterior scores only: no probe paid for its emulator error
    assert not any((p / "emulator_error.zarr").exists() for p in names)
    assert not any("emulator-error" in (p / "timings.json").read_text() for p in names)
    # a SLURM submission of the study runs emulate again for them (it measures only the error)
    config = load_config(path)
    done = {name: {"train-emulator", "emulate", "infer", "score"} for name in probed}
    assert reopen_unmeasured_errors(config, StudyLayout(config.study_dir), done) == probed
    scripts = write_pipeline_scripts(config, SubmitResources(), sorted(probed), done)
    for name in probed:
        lines = scripts[f"level:{name}"].read_text().splitlines()
        (command,) = [line for line in lines if line.startswith(sys.executable)]
        assert re.findall(r"--stage=(\S+)", command) == ["emulate"]
    kept = {p.name: (p / "posterior.pt").stat().st_mtime_ns for p in names}
    assert run_cli("run", str(path), "--target", "--quiet").returncode == 0
    # a later level run measures the error left out, and trains nothing again
    first = sorted(probed)[0]
    again = run_cli("level", str(path), "--level", first, "--quiet")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "1 ran (emulator-error" in again.stderr  # the console writes to stderr
    assert (study / "levels" / first / "emulator_error.zarr").exists()
    assert {
        name: (study / "levels" / name / "posterior.pt").stat().st_mtime_ns for name in kept
    } == kept
