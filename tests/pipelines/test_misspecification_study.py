"""Misspecification as a study axis, run by the command a user runs: observations at several
degrees of the normal location model's knob come from its data-generating process through the
campaign engine, every unit is scored at every degree, and the report draws coverage and
``log q(theta0 | y)`` against the degree beside the analytic curve of the exact posterior."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import load_config
from simulators import ConfigError
from simulators.store import open_store

pytestmark = pytest.mark.slow

DEGREES = [1.0, 2.0, 4.0]
CONFIG = {
    "name": "misspecified",
    "seed": 4,
    "simulator": {
        "name": "normal_location",
        "settings": {"n": 20, "prior_var": 1.0, "summaries": "mean"},
    },
    "budgets": {"train": 1500, "test": 40, "observations": 2, "chunk_size": 500},
    "ladder": [
        {
            "name": "full",
            "simplification": 0,
            "emulator": {"family": "maf", "transforms": 2, "hidden_features": 32},
        }
    ],
    "inference": {
        "methods": ["npe", "nnpe"],
        "replicates": 1,
        "density_estimator": "maf",
        "hidden_features": 32,
        "num_transforms": 2,
        "stop_after_epochs": 10,
    },
    "scores": {"posterior_samples": 300, "sbc_samples": 30, "ppc_samples": 20, "lc2st_null": 3},
    "misspecification": {
        "knob": "dgp_variance",
        "degrees": DEGREES,
        "observations": 300,
        "posterior_samples": 300,
        "c2st_observations": 2,
    },
    "cluster": {
        "profile": "local",
        "overrides": {"n_workers": 2, "dashboard_address": "127.0.0.1:0"},
    },
}


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("misspecified")
    config = folder / "misspecified.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "output_dir": str(folder / "studies")}))
    result = CliRunner().invoke(app, ["run", str(config), "--quiet"])
    assert result.exit_code == 0, result.output
    return config


def test_every_degree_is_simulated_from_the_dgp_at_the_same_theta0(study: Path) -> None:
    config = load_config(study)
    stores = [
        open_store(config.study_dir / "simulations" / f"misspecified-{i}.zarr")
        for i in range(len(DEGREES))
    ]
    for ds in stores[1:]:
        np.testing.assert_array_equal(ds["theta"].values, stores[0]["theta"].values)
    # the sample mean spreads around theta0 with variance dgp_variance / n
    for degree, ds in zip(DEGREES, stores, strict=True):
        spread = np.var(ds["x"].values[:, 0] - ds["theta"].values[:, 0])
        assert abs(spread / (degree / 20) - 1) < 0.25, (degree, spread)


def test_every_unit_is_scored_at_every_degree_and_npe_follows_the_analytic_coverage(
    study: Path,
) -> None:
    config = load_config(study)
    table = pd.read_csv(config.study_dir / "report" / "misspecification.csv")
    assert set(zip(table["unit"], table["degree"], strict=True)) == {
        (unit, d) for unit in ("full", "full/nnpe", "ceiling", "ceiling/nnpe") for d in DEGREES
    }
    npe = table[table["unit"] == "ceiling"].sort_values("degree")
    # 300 observations: binomial standard error <= 0.029; allow 4 of them
    for column in ("coverage_50", "coverage_90"):
        gap = np.abs(npe[column] - npe[f"exact_{column}"])
        assert (gap < 4 * np.sqrt(0.25 / 300)).all(), npe[[column, f"exact_{column}"]]
    assert npe["coverage_90"].is_monotonic_decreasing
    assert npe["coverage_90"].iloc[-1] < 0.75  # analytic 0.67 at dgp_variance 4
    assert np.all(np.diff(npe["log_q_theta0"]) < 0)
    report = config.study_dir / "report"
    for name in ("degree_coverage_90", "degree_log_q_theta0", "degree_c2st_dgp"):
        assert (report / "figures" / f"{name}.png").stat().st_size > 5000
    assert "Misspecification: scores against dgp_variance" in (report / "index.html").read_text()


def test_a_knob_the_simulator_lacks_is_refused_naming_the_right_one(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    bad = {**CONFIG, "misspecification": {"knob": "noise", "degrees": [1, 2]}}
    config.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError, match="knob: dgp_variance"):
        load_config(config)


def test_a_lost_degree_store_is_rescored_and_nothing_else_runs_again(study: Path) -> None:
    import shutil

    config = load_config(study)
    lost = config.study_dir / "levels" / "full" / "nnpe" / "degrees.zarr"
    kept = config.study_dir / "ceiling" / "degrees.zarr"
    before = kept.stat().st_mtime_ns
    shutil.rmtree(lost)
    status = CliRunner().invoke(app, ["status", str(study)])
    assert status.exit_code == 0 and "full/nnpe" in status.output
    result = CliRunner().invoke(app, ["run", str(study), "--quiet"])
    assert result.exit_code == 0, result.output
    assert lost.is_dir() and kept.stat().st_mtime_ns == before
