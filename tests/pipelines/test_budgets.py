"""Budgets are checked before anything runs: absurd ones are refused with the estimate, the
machine's memory and the way to force them; sane ones show their estimate."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.budgets import estimate_budgets, human_bytes
from pipelines.cli import app
from pipelines.config import load_config
from simulators.errors import ConfigError
from simulators.registry import make_simulator

ROOT = Path(__file__).resolve().parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def _write(tmp_path, **budgets) -> Path:
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["budgets"].update(budgets)
    raw["output_dir"] = str(tmp_path / "studies")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "400", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )


def test_the_quickstart_estimate_is_rows_times_values_times_8_bytes(tmp_path):
    config = load_config(QUICKSTART, output_dir=tmp_path)
    found = estimate_budgets(config)
    # gaussian_linear dim 5: 5 parameters + 5 outputs, float64; 4000 training rows, 3 copies
    assert found.memory_field == "budgets.train"
    assert found.memory_bytes == 4000 * (10 * 8 * 3 + 9)
    stores = 4000 + 300 + 4 + 4000 * 3  # train, test, observations, emulated per level
    assert found.disk_bytes == stores * (10 * 8 + 28)
    assert human_bytes(found.memory_bytes) == "996.0 kB"


def test_validate_refuses_a_train_budget_of_1e12_naming_field_estimate_and_force(tmp_path):
    path = _write(tmp_path, train=10**12)
    done = _cli("validate", str(path))
    assert done.returncode == 2
    message = " ".join(done.stderr.split())
    assert re.search(
        r"budgets\.train=1,000,000,000,000 needs about 249\.0 TB of memory .*but this machine "
        r"has [\d.]+ [kMGT]B",
        message,
    ), message
    assert "--force" in message and "Nothing was run" in message
    with pytest.raises(ConfigError, match="budgets.train=1,000,000,000,000"):
        load_config(path)
    # forced: valid, with the estimate shown
    forced = _cli("validate", str(path), "--force")
    assert forced.returncode == 0, forced.stderr
    assert "estimated peak memory 249.0 TB (driven by budgets.train)" in forced.stderr


def test_run_refuses_it_before_anything_is_written_and_status_still_answers(tmp_path):
    path = _write(tmp_path, emulated=10**11)
    refused = CliRunner().invoke(app, ["run", str(path)])
    assert isinstance(refused.exception, ConfigError)
    assert "budgets.emulated=100,000,000,000 needs about" in str(refused.exception)
    assert not (tmp_path / "studies").exists()
    status = CliRunner().invoke(app, ["status", str(path)])
    assert status.exit_code == 0, status.output


def test_validate_shows_the_estimate_of_a_sane_study():
    done = _cli("validate", str(QUICKSTART))
    assert done.returncode == 0, done.stderr
    assert "estimated peak memory 996.0 kB (driven by budgets.train), disk" in done.stderr


def test_a_training_store_gives_the_measured_core_time(tmp_path):
    from pipelines.layout import StudyLayout
    from simulators.store import Status, create_store, store_identity, write_rows

    config = load_config(QUICKSTART, output_dir=tmp_path)
    assert estimate_budgets(config, measure=True).simulator_core_s is None
    simulator = make_simulator("gaussian_linear", dim=5, prior_var=0.1, noise_var=0.1)
    store = StudyLayout(config.study_dir).simulations("train")
    store.parent.mkdir(parents=True)
    identity = store_identity(simulator, n_samples=4, chunk_size=4, campaign_seed=0)
    create_store(store, identity, simulator.prior.names, simulator.output_names)
    status = np.array([Status.OK, Status.OK, Status.OK, Status.FAILED], dtype=np.int8)
    elapsed = np.array([1.0, 2.0, 3.0, 100.0])  # the failed row's time is left out
    theta = np.zeros((4, 5))
    write_rows(store, 0, theta=theta, x=theta, seed=np.arange(4), status=status, elapsed=elapsed)
    found = estimate_budgets(config, measure=True)
    assert found.simulator_core_s == 2.0 * (4000 + 300 + 4)
    assert "true-simulator runs about 2.4 core-hours" in str(found)
