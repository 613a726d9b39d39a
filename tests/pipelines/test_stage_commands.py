"""Each stage as its own command: per-level runs, prerequisites, re-runs, refusal, replace-stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import load_config
from pipelines.layout import StudyLayout
from pipelines.status import study_status
from simulators.errors import StaleOutputError

pytestmark = pytest.mark.slow

TINY = {
    "name": "tiny",
    "seed": 3,
    "simulator": {"name": "gaussian_linear", "settings": {"dim": 2}},
    "budgets": {"train": 400, "test": 40, "observations": 2, "chunk_size": 200},
    "ladder": [
        {
            "name": "wide",
            "simplification": 0,
            "emulator": {"family": "maf", "transforms": 1, "hidden_features": 16, "max_epochs": 5},
        },
        {
            "name": "narrow",
            "simplification": 1,
            "emulator": {
                "family": "maf",
                "transforms": 1,
                "hidden_features": 4,
                "train_samples": 100,
                "max_epochs": 3,
            },
        },
    ],
    "inference": {"hidden_features": 16, "num_transforms": 1, "stop_after_epochs": 3},
    "scores": {"posterior_samples": 200, "sbc_samples": 30},
    "cluster": {
        "profile": "local",
        "overrides": {"n_workers": 1, "dashboard_address": "127.0.0.1:0"},
    },
}
WORKERS = ["--workers", "1", "--quiet"]


def _write(folder: Path, config: dict) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump({**config, "output_dir": str(folder / "studies")}))
    return path


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _files(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def stepwise(tmp_path_factory):
    """The tiny study run stage by stage, level by level, as a SLURM pipeline script would."""
    folder = tmp_path_factory.mktemp("stages")
    config_file = _write(folder, TINY)
    layout = StudyLayout(folder / "studies" / "tiny")
    log = {}
    log["simulate"] = _invoke("simulate", str(config_file), *WORKERS)
    log["simulate again"] = _invoke("simulate", str(config_file), *WORKERS)
    log["train wide"] = _invoke("train-emulator", str(config_file), "--level", "0", *WORKERS)
    log["narrow after train wide"] = layout.level("narrow").root.exists()
    refused = CliRunner().invoke(app, ["emulate", str(config_file), "-l", "narrow", *WORKERS])
    log["emulate narrow before training"] = " ".join(str(refused.exception).split())
    for stage in ("emulate", "infer", "score"):
        log[stage] = _invoke(stage, str(config_file), "--level", "wide", *WORKERS)
    log["level narrow"] = _invoke("level", str(config_file), "-l", "narrow", *WORKERS)
    log["ceiling"] = _invoke("level", str(config_file), "-l", "ceiling", *WORKERS)
    log["report"] = _invoke("report", str(config_file), "--quiet")
    return config_file, layout, log


def test_a_stage_before_its_inputs_is_refused_with_the_command_to_run(tmp_path):
    config_file = _write(tmp_path, TINY)
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "emulate", str(config_file), "-l", "narrow"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr
    message = " ".join(result.stderr.split())
    assert "simulate-train is missing for this config" in message, message
    assert "run `emustudy simulate CONFIG` first" in message, message
    assert not (tmp_path / "studies" / "tiny" / "levels").exists()


def test_an_unknown_level_lists_the_levels(tmp_path):
    config_file = _write(tmp_path, TINY)
    result = CliRunner().invoke(app, ["infer", str(config_file), "-l", "huge"])
    assert "0=wide, 1=narrow, 2=ceiling" in str(result.exception)


def test_simulate_makes_the_stores_and_a_rerun_skips_them(stepwise):
    _, layout, log = stepwise
    for role in ("train", "test", "observations"):
        assert layout.simulations(role).exists()
    assert "3 ran" in log["simulate"]
    assert "0 ran" in log["simulate again"] and "3 already done" in log["simulate again"]


def test_one_level_runs_without_touching_another(stepwise):
    _, layout, log = stepwise
    assert "train-emulator (wide)" in log["train wide"]
    assert log["narrow after train wide"] is False
    refusal = log["emulate narrow before training"]
    assert "train-emulator of level 'narrow' is missing" in refusal, refusal
    assert "emustudy train-emulator CONFIG --level narrow" in refusal, refusal
    assert layout.level("wide").emulator.exists()


def test_each_level_stage_command_makes_its_output(stepwise):
    _, layout, log = stepwise
    wide = layout.level("wide")
    assert wide.emulated.exists() and "emulate (wide)" in log["emulate"]
    assert wide.posterior.exists() and "infer (wide)" in log["infer"]
    assert wide.scores.exists() and "score (wide)" in log["score"]
    narrow = layout.level("narrow")
    assert all(p.exists() for p in (narrow.emulator, narrow.emulated, narrow.posterior))
    ran = log["level narrow"]
    assert "5 ran" in ran, ran  # emulate measures the emulator's error as a stage of its own
    for stage in ("train-emulator", "emulate", "emulator-error", "infer", "score"):
        assert f"{stage} (narrow)" in ran, ran
    assert layout.level("ceiling").scores.exists() and "2 ran" in log["ceiling"]
    assert (layout.report / "index.html").exists()


def test_status_reports_every_stage_done(stepwise):
    config_file, _, _ = stepwise
    status = study_status(load_config(config_file))
    assert status.all_done, [(r.stage, r.level, r.state) for r in status.rows]
    train = next(r for r in status.rows if r.stage == "simulate-train")
    assert train.counts["ok"] == 400 and train.counts["pending"] == 0
    output = _invoke("status", str(config_file))
    assert "every stage is done" in output


def test_a_changed_level_is_refused_then_replaced_without_touching_others(stepwise, tmp_path):
    config_file, layout, _ = stepwise
    changed = yaml.safe_load(config_file.read_text())
    changed["ladder"][1]["emulator"]["hidden_features"] = 6
    config_file.write_text(yaml.safe_dump(changed))
    untouched = {
        path: stamp
        for path, stamp in _files(layout.root).items()
        if not {"narrow", "report"} & set(path.parts) and path.name != "study.yaml"
    }
    narrow_before = _files(layout.level("narrow").root)

    with pytest.raises(StaleOutputError, match="made by a different config"):
        CliRunner().invoke(
            app,
            ["train-emulator", str(config_file), "-l", "narrow", *WORKERS],
            catch_exceptions=False,
        )
    assert _files(layout.level("narrow").root) == narrow_before

    _invoke("level", str(config_file), "-l", "narrow", "--replace-stale", *WORKERS)
    stale = list((layout.root / "stale").glob("narrow-*"))
    assert len(stale) == 1 and (stale[0] / "emulator.pt").exists()
    assert all(path.exists() and path.stat().st_mtime_ns == t for path, t in untouched.items())
    status = {(r.stage, r.level): r.state for r in study_status(load_config(config_file)).rows}
    assert status[("score", "narrow")] == "done"
    assert status[("report", None)] != "done"  # the report predates the new level scores
