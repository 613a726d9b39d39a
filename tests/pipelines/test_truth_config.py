"""The study config's truth: which reference posterior, and observations as a count or a file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import load_config
from simulators import GaussianLinear
from simulators.errors import ConfigError

CONFIGS = Path(__file__).parents[2] / "configs"


def _config(tmp_path: Path, **changes) -> Path:
    raw = yaml.safe_load((CONFIGS / "quickstart.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "studies")
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _observed_csv(tmp_path: Path, rows: int = 3) -> Path:
    simulator = GaussianLinear(dim=5, prior_var=0.1, noise_var=0.1)
    x = np.random.default_rng(0).normal(size=(rows, 5))
    header = ",".join(simulator.output_names)
    path = tmp_path / "observed.csv"
    path.write_text(header + "\n" + "\n".join(",".join(f"{v:.6f}" for v in r) for r in x) + "\n")
    return path


def test_a_simulator_with_an_exact_posterior_is_scored_against_it_by_default(tmp_path):
    config = load_config(_config(tmp_path))
    assert config.reference_kind == "exact" and config.reference_budget == 0
    assert config.n_observations == 4


def test_observations_may_be_a_count_at_the_top_level(tmp_path):
    budgets = yaml.safe_load((CONFIGS / "quickstart.yaml").read_text())["budgets"]
    budgets.pop("observations")
    config = load_config(_config(tmp_path, budgets=budgets, observations=7))
    assert config.budgets.observations == 7 and config.n_observations == 7
    with pytest.raises(ConfigError, match="disagree; give the count once"):
        load_config(_config(tmp_path, observations=7))


def test_observations_from_a_file_replace_the_simulated_ones(tmp_path):
    budgets = yaml.safe_load((CONFIGS / "quickstart.yaml").read_text())["budgets"]
    path = _observed_csv(tmp_path)
    with pytest.raises(ConfigError, match="give the observations once.*not both"):
        load_config(_config(tmp_path, observations=str(path)))
    budgets.pop("observations")
    config = load_config(_config(tmp_path, budgets=budgets, observations=str(path)))
    assert config.n_observations == 3 and config.observations.file == path
    result = CliRunner().invoke(
        app, ["validate", str(_config(tmp_path, budgets=budgets, observations=str(path)))]
    )
    assert result.exit_code == 0, result.output
    assert "reference: exact" in result.output and f"3 from {path}" in result.output


def test_bad_observation_files_are_refused_at_load_naming_file_and_row(tmp_path):
    budgets = yaml.safe_load((CONFIGS / "quickstart.yaml").read_text())["budgets"]
    budgets.pop("observations")
    path = _observed_csv(tmp_path)
    lines = path.read_text().splitlines()
    lines[2] = "nan," + lines[2].split(",", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=r"observed\.csv.*row 1|observed\.csv.*observation 1"):
        load_config(_config(tmp_path, budgets=budgets, observations=str(path)))
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match=r"wrong\.csv"):
        load_config(_config(tmp_path, budgets=budgets, observations=str(wrong)))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(_config(tmp_path, budgets=budgets, observations=str(tmp_path / "no.csv")))


def test_a_samples_reference_needs_draws_for_every_observation_of_the_file(tmp_path):
    budgets = yaml.safe_load((CONFIGS / "quickstart.yaml").read_text())["budgets"]
    budgets.pop("observations")
    observed = _observed_csv(tmp_path, rows=3)
    draws = tmp_path / "draws.npy"
    np.save(draws, np.zeros((2, 100, 5)))
    reference = {"kind": "samples", "samples": str(draws)}
    with pytest.raises(ConfigError, match=r"draws for 2 observations but the study has 3"):
        load_config(
            _config(tmp_path, budgets=budgets, observations=str(observed), reference=reference)
        )
    np.save(draws, np.zeros((3, 100, 5)))
    config = load_config(
        _config(tmp_path, budgets=budgets, observations=str(observed), reference=reference)
    )
    assert config.reference_kind == "samples"
    with pytest.raises(ConfigError, match="needs `reference.samples: FILE`"):
        load_config(_config(tmp_path, reference={"kind": "samples"}))


@pytest.mark.parametrize("name", ["lorenz96.yaml", "hodgkin_huxley.yaml", "two_moons.yaml"])
def test_shipped_configs_without_an_exact_reference_use_an_own_campaign(name):
    config = load_config(CONFIGS / name, force=True)
    assert config.reference_kind == "simulation"
    assert config.reference_budget >= 10 * config.budgets.train
