"""The misspecification sweep's settings and observations, without running a study: what a
config may declare (and the messages when it may not), and the observations each degree gets."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from inference.observations import ObservationModel
from pipelines.config import load_config
from pipelines.degrees import DegreeScoring, MisspecificationSweep, degree_observations
from simulators import ConfigError, Stream, make_simulator, sample_seeds
from simulators.store import Status, create_store, store_identity, write_rows

BASE: dict[str, Any] = {
    "name": "degrees",
    "simulator": {"name": "normal_location", "settings": {"n": 20}},
    "budgets": {"train": 200, "test": 40, "observations": 2},
    "ladder": [{"name": "full", "simplification": 0, "emulator": {"family": "gaussian"}}],
}


def _load(tmp_path: Path, **changes: Any) -> Any:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump({**BASE, **changes}))
    return load_config(path)


def test_a_simulator_knob_sweep_loads_and_its_degrees_must_be_valid(tmp_path: Path) -> None:
    config = _load(tmp_path, misspecification={"knob": "dgp_variance", "degrees": [1, 2, 4]})
    assert config.misspecification.degrees == (1.0, 2.0, 4.0)
    with pytest.raises(ConfigError, match="positive variances"):
        _load(tmp_path, misspecification={"knob": "dgp_variance", "degrees": [1, -2]})
    with pytest.raises(ConfigError, match="distinct"):
        _load(tmp_path, misspecification={"knob": "dgp_variance", "degrees": [2, 2]})


def test_a_simulator_without_a_dgp_is_told_to_sweep_the_observation_model(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="observation_model.scale"):
        _load(
            tmp_path,
            simulator={"name": "gaussian_linear", "settings": {"dim": 2}},
            misspecification={"knob": "noise_var", "degrees": [0.1, 0.2]},
        )


def test_an_observation_model_knob_needs_a_matching_kind(tmp_path: Path) -> None:
    sweep = {"knob": "observation_model.fraction", "degrees": [0, 0.2]}
    with pytest.raises(ConfigError, match="set it to contamination"):
        _load(tmp_path, misspecification=sweep)
    noisy = {"observation_model": {"kind": "noise", "scale": 1.0}}
    with pytest.raises(ConfigError, match="set it to contamination"):
        _load(tmp_path, misspecification=sweep, scores=noisy)
    contaminated = {"observation_model": {"kind": "contamination", "scale": 5.0}}
    config = _load(tmp_path, misspecification=sweep, scores=contaminated)
    assert not config.misspecification.on_simulator
    with pytest.raises(ConfigError, match="0 <= fraction <= 1"):
        _load(
            tmp_path,
            misspecification={**sweep, "degrees": [0, 1.5]},
            scores=contaminated,
        )


def test_methods_trained_on_the_observations_are_refused_in_a_sweep(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="one posterior per degree"):
        _load(
            tmp_path,
            inference={"methods": ["npe", "mmd_npe"]},
            misspecification={"knob": "dgp_variance", "degrees": [1, 2]},
        )


def _store(path: Path, n: int, failed: int) -> Path:
    simulator = make_simulator("gaussian_linear", dim=3)
    theta = simulator.prior.sample_from_seeds(sample_seeds(0, np.arange(n), Stream.PRIOR))
    seeds = sample_seeds(0, np.arange(n), Stream.SIMULATION)
    create_store(
        path,
        store_identity(simulator, n_samples=n, chunk_size=n, campaign_seed=0),
        simulator.prior.names,
        simulator.output_names,
    )
    x = simulator.simulate(theta, seeds)
    status = np.full(n, Status.OK, dtype=np.int8)
    x[failed], status[failed] = np.nan, Status.FAILED
    write_rows(path, 0, theta=theta, x=x, seed=seeds, elapsed=np.zeros(n), status=status)
    return path


def test_an_observation_model_sweep_contaminates_a_growing_share_of_the_same_runs(
    tmp_path: Path,
) -> None:
    store = _store(tmp_path / "misspecified.zarr", 200, failed=7)
    job = DegreeScoring(
        sweep=MisspecificationSweep(knob="observation_model.fraction", degrees=(0.0, 1 / 3, 1.0)),
        observation_model=ObservationModel(kind="contamination", scale=5.0),
        simulator=("gaussian_linear", '{"dim": 3}'),
        stores=(store,),
        test_store=store,
        posteriors=(),
        out=tmp_path / "degrees.zarr",
        seed=0,
        observation_seed=1,
    )
    theta0, ys = degree_observations(job)
    assert theta0.shape == (199, 3) and [y.shape for y in ys] == [(199, 3)] * 3
    moved = [np.mean(np.abs(y - ys[0]) > 1e-9, axis=0).sum() for y in ys]
    assert moved == pytest.approx([0.0, 1.0, 3.0])  # 0, 1 and 3 of the 3 outputs per run
