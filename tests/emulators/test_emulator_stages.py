"""The train-emulator and emulate stages handle every level kind and save measured errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cluster.client import cluster_client
from emulators import Emulator, PerturbedEmulator
from emulators.levels import load_stand_in
from inference.emulator_error import load_emulator_error
from pipelines import stages
from pipelines.config import StudyConfig
from pipelines.layout import StudyLayout
from pipelines.manifest import Manifest
from simulators.store import load_pairs

pytestmark = pytest.mark.slow


def _config(output_dir: Path) -> StudyConfig:
    return StudyConfig.model_validate(
        {
            "name": "kinds",
            "seed": 3,
            "output_dir": str(output_dir),
            "simulator": {"name": "gaussian_linear", "settings": {"dim": 2}},
            "budgets": {"train": 400, "test": 40, "observations": 2, "chunk_size": 200},
            "ladder": [
                {
                    "name": "net",
                    "simplification": 0,
                    "emulator": {"family": "gaussian", "hidden_features": 8, "max_epochs": 3},
                },
                {
                    "name": "noisier",
                    "simplification": 1,
                    "kind": "reduced_simulator",
                    "simulator": {
                        "name": "gaussian_linear",
                        "settings": {"dim": 2, "noise_var": 0.4},
                    },
                },
                {
                    "name": "shifted",
                    "simplification": 2,
                    "kind": "perturbed",
                    "base": "net",
                    "bias": [1.0, -1.0],
                },
            ],
            "cluster": {"overrides": {"n_workers": 1, "dashboard_address": "127.0.0.1:0"}},
        }
    )


def test_stages_realise_every_kind_and_measure_it(tmp_path: Path) -> None:
    config = _config(tmp_path)
    layout = StudyLayout(config.study_dir)
    levels = list(config.ladder)
    with cluster_client("local", n_workers=1, dashboard_address="127.0.0.1:0") as client:
        stages.simulate(config, layout, client, False)
        trained = stages.train_emulators(config, layout, client, levels)
        emulated = stages.emulate(config, layout, client, levels, False)
        again = stages.emulate(config, layout, client, levels, False)
    assert all(o.ran for o in trained + emulated) and not any(o.ran for o in again)
    assert isinstance(load_stand_in(layout.level("net").emulator), Emulator)
    assert load_stand_in(layout.level("noisier").emulator).settings["noise_var"] == 0.4
    assert isinstance(load_stand_in(layout.level("shifted").emulator), PerturbedEmulator)
    errors = {
        lvl.name: load_emulator_error(layout.level(lvl.name).emulator_error) for lvl in levels
    }
    assert "emulator-error" in Manifest(layout.level("noisier").manifest).entries()
    assert np.isnan(float(errors["noisier"]["nll"])) and np.isfinite(float(errors["net"]["nll"]))
    np.testing.assert_allclose(
        errors["shifted"]["mean_error"].values - errors["net"]["mean_error"].values,
        [1.0, -1.0],
        atol=0.1,  # each level draws with its own seed: sampling noise ~0.02
    )
    assert errors["noisier"].attrs["simplification"] == 1.0
    _, x_net, _ = load_pairs(layout.level("net").emulated)
    _, x_shifted, _ = load_pairs(layout.level("shifted").emulated)
    np.testing.assert_allclose(x_shifted - x_net, np.tile([1.0, -1.0], (len(x_net), 1)))
