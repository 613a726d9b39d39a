"""``emustudy validate`` prints the estimated core time of every stage, and the estimates scale
with the config's budgets as their per-unit models say."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from cli_process import ROOT, run_cli

from pipelines.config import load_config
from pipelines.cost_estimate import estimate_stage_costs, simulator_seconds

STAGES = ("simulate", "train-emulator", "emulate", "emulator-error", "infer", "score")


def _config_file(tmp_path: Path, **budgets: int) -> Path:
    raw = yaml.safe_load((ROOT / "configs" / "quickstart.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "studies")
    raw["budgets"].update(budgets)
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_validate_prints_a_positive_estimate_per_stage(tmp_path: Path) -> None:
    done = run_cli("validate", str(_config_file(tmp_path)), timeout=300)
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr  # rich writes to stderr
    assert "estimated core time per stage" in text and "estimates" in text
    for stage in (*STAGES, "total"):
        row = re.search(rf"│ {re.escape(stage)}\s+│\s+([\d,.]+) │", text)
        assert row, f"no row for {stage}:\n{text}"
        assert float(row.group(1).replace(",", "")) > 0, stage


def test_estimates_scale_with_the_budgets(tmp_path: Path) -> None:
    small = load_config(_config_file(tmp_path / "a", train=1000, test=100, observations=2))
    large = load_config(_config_file(tmp_path / "b", train=2000, test=200, observations=4))
    wider = load_config(_config_file(tmp_path / "c", train=2000, test=100, observations=2))
    per_run = 0.01
    a, b, c = (
        {cost.stage: cost.core_s for cost in estimate_stage_costs(config, per_run)}
        for config in (small, large, wider)
    )
    assert set(a) == set(STAGES)
    assert b["simulate"] == pytest.approx(2 * a["simulate"])
    assert c["simulate"] - a["simulate"] == pytest.approx(1000 * per_run)  # 1,000 more runs
    assert c["infer"] == pytest.approx(2 * a["infer"])  # every posterior trains on train runs
    assert c["emulate"] == pytest.approx(2 * a["emulate"])
    assert b["score"] > a["score"] and c["train-emulator"] > a["train-emulator"]


def test_the_simulator_is_timed_when_no_store_measured_it(tmp_path: Path) -> None:
    seconds, how = simulator_seconds(load_config(_config_file(tmp_path)))
    assert 0 < seconds < 1 and how.startswith("timed here on a batch of")


def _shipped(name: str, tmp_path: Path):
    raw = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "studies")  # no store of a past run to read
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_config(path)


def test_a_simulator_with_a_large_cost_per_call_is_timed_in_batches(tmp_path: Path) -> None:
    """Hodgkin-Huxley pays about 0.5 s a call, batch or not: timed on one run it looked 100x
    dearer than in a campaign (validate said 19 h for a simulate stage that took 4 min)."""
    seconds, how = simulator_seconds(_shipped("hodgkin_huxley", tmp_path))
    assert seconds < 0.02, (seconds, how)  # campaigns: about 4 ms a run
    assert how == "timed here on a batch of 250", how  # its chunk_size


# Core seconds measured end to end on this 2-core machine (README's configs table, BENCHMARKS.md):
# each posterior's and reference member's training loops, all NSF with 5 transforms.
MEASURED = {
    ("lorenz96", "infer"): 7783.0,  # 7 units x 3 replicates on 20,000 pairs
    ("lorenz96", "reference"): 11420.0,  # 3 members on 200,000 pairs
    ("lorenz96_small", "infer"): 940.9,
    ("lorenz96_small", "reference"): 383.0,
    ("hodgkin_huxley", "reference"): 2017.0,
}


@pytest.mark.parametrize(("name", "stage"), list(MEASURED), ids=[f"{n}-{s}" for n, s in MEASURED])
def test_training_estimates_are_within_2x_of_the_measured_costs(
    tmp_path: Path, name: str, stage: str
) -> None:
    costs = {c.stage: c.core_s for c in estimate_stage_costs(_shipped(name, tmp_path), 0.007)}
    ratio = costs[stage] / MEASURED[name, stage]
    assert 0.5 <= ratio <= 2.0, f"{name} {stage}: estimated {costs[stage]:.0f} core-s, {ratio:.2f}x"
