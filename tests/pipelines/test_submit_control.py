"""`emustudy submit --plan` and `--target` on the real local SLURM: control jobs that submit one
array task per level, round by round, and reuse what the study folder already holds."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from cli_process import reduced_control
from typer.testing import CliRunner, Result

from pipelines.adaptive import adaptive_result, next_probe, probes_on_disk, sweep_levels
from pipelines.cli import app
from pipelines.config import load_config
from pipelines.layout import StudyLayout
from pipelines.submissions import ACTIVE, read_submissions, unit_jobs, unit_states
from simulators.errors import ConfigError


def _emustudy(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


def _small_control(folder: Path) -> Path:
    """control.yaml with 4 levels (60 to 2400 runs), fewer pairs and draws."""
    return reduced_control(
        folder, train=2400, levels=4, test=60, posterior_samples=400, sbc_samples=30
    )


def _wait_for(result: Path, layout: StudyLayout, timeout: float) -> None:
    """Until the chain wrote ``result`` and its last job ended; fails at once when no job of
    the study is left without it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = unit_states(unit_jobs(read_submissions(layout)))
        if not any(state in ACTIVE for state in states.values()):
            if result.exists():
                return
            logs = sorted((layout.root / "slurm" / "logs").glob("*.out"))
            tails = "\n".join(f"== {p.name}\n{p.read_text()[-1500:]}" for p in logs[-3:])
            raise AssertionError(f"the chain ended without {result.name}: {states}\n{tails}")
        time.sleep(2)
    raise AssertionError(f"{result.name} not written within {timeout} s")


def _posteriors(layout: StudyLayout) -> dict[str, int]:
    return {
        path.parent.name: path.stat().st_mtime_ns
        for path in (layout.root / "levels").glob("*/posterior.pt")
    }


@pytest.mark.slurm
@pytest.mark.slow
@pytest.mark.acceptance  # 2.6 min on 2 cores: `make acceptance`, to keep `make test` under 20 min
def test_plan_then_target_run_as_slurm_arrays_one_task_per_level(tmp_path):
    path = _small_control(tmp_path)
    config = load_config(path)
    layout = StudyLayout(config.study_dir)
    names = sweep_levels(config, "data")

    refused = _emustudy("submit", str(path), "--profile", "slurm-local", "--plan", "--anchors", "9")
    assert isinstance(refused.exception, ConfigError) and "--anchors 4" in str(refused.exception)
    assert not (layout.root / "slurm" / "jobs.json").exists()  # refused before any job

    started = _emustudy("submit", str(path), "--profile", "slurm-local", "--plan", "--anchors", "3")
    assert started.exit_code == 0, started.output
    assert "simulate  job" in started.output and "control   job" in started.output
    again = _emustudy("submit", str(path), "--profile", "slurm-local", "--target")
    assert "emustudy cancel" in str(again.exception)  # one chain at a time
    _wait_for(layout.report / "plan.json", layout, timeout=900)

    plan = json.loads((layout.report / "plan.json").read_text())
    records = read_submissions(layout)
    arrays = {r["array"]: r["level_names"] for r in records if r.get("array")}
    assert set(arrays) == {"emulators", "anchors"}
    assert sorted(arrays["emulators"]) == sorted(names)  # one task per level: the cheap stages
    assert sorted(arrays["anchors"]) == sorted(plan["anchors"]) and len(plan["anchors"]) == 3
    logs = layout.root / "slurm" / "logs"
    assert len(list(logs.glob("emulators-*_*.out"))) == 4
    assert len(list(logs.glob("anchors-*_*.out"))) == 3
    assert set(_posteriors(layout)) == set(plan["anchors"])  # no other level was trained
    measured = {row["level"] for row in plan["levels"] if row["measured"]}
    assert measured == set(plan["anchors"])
    assert all(row["low"] <= row["quality"] <= row["high"] for row in plan["levels"])

    kept = _posteriors(layout)
    started = _emustudy("submit", str(path), "--profile", "slurm-local", "--target")
    assert started.exit_code == 0, started.output
    assert "simulate  job" not in started.output  # the stores are done
    _wait_for(layout.report / "adaptive.json", layout, timeout=900)

    (sweep,) = json.loads((layout.report / "adaptive.json").read_text())["sweeps"]
    rounds = [r for r in read_submissions(layout) if str(r.get("array", "")).startswith("probes")]
    probed = [name for r in rounds for name in r["level_names"]]
    assert [r["array"] for r in rounds] == [f"probes-{i + 1}" for i in range(len(rounds))]
    assert all(len(r["level_names"]) == 1 for r in rounds)  # one sweep: one level a round
    assert not set(probed) & set(plan["anchors"])  # the anchors were probes for free
    assert {p: t for p, t in _posteriors(layout).items() if p in kept} == kept
    assert {p["level"] for p in sweep["probes"]} == set(plan["anchors"]) | set(probed)

    # the search ended where `run --target` ends: nothing left to probe, same bracket
    known = probes_on_disk(config, layout, "data")
    order = sweep_levels(config, "data")
    assert next_probe(len(order), {i: p.verdict for i, p in known.items()}) is None
    (local,) = adaptive_result(config, layout)
    assert (sweep["fails_level"], sweep["meets_level"]) == (local.fails_level, local.meets_level)
    assert sweep["undecided"] == local.undecided
