"""Measured emulator error: zero for the truth, a declared bias recovered, growth along a ladder."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from gaussian_stores import FULL, write_gaussian_store
from scipy.stats import spearmanr

from emulators import (
    Emulator,
    EmulatorSpec,
    FidelityLevel,
    PerturbedEmulator,
    PerturbedLevel,
    train_emulator,
)
from inference.emulator_error import (
    draw_block,
    error_dataset,
    held_out,
    load_emulator_error,
    measure_emulator_error,
    save_emulator_error,
)
from simulators import ConfigError, StoreError, make_simulator
from simulators.seeding import Stream, sample_seeds
from simulators.store import load_pairs

BIAS = [0.3, 0.0, -0.2]


@pytest.fixture(scope="module")
def test_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """200 held-out Gaussian-linear pairs from another campaign than the training store."""
    return write_gaussian_store(tmp_path_factory.mktemp("test") / "test.zarr", 200, campaign_seed=7)


def test_the_simulator_against_itself_shows_no_error(test_store: Path) -> None:
    truth = make_simulator("gaussian_linear", dim=3, noise_var=0.1)
    error = measure_emulator_error(truth, test_store, seed=0, n_draws=10)
    assert math.isnan(float(error["nll"]))  # no density: a plain simulator
    assert abs(float(error["c2st"]) - 0.5) < 0.05
    assert abs(float(error["mmd"])) < 0.005
    assert np.abs(error["mean_error"].values).max() < 0.03
    assert np.abs(error["std_error"].values).max() < 0.03
    assert float(error["speedup"]) > 0 and list(error["output"].values) == ["x_0", "x_1", "x_2"]
    assert error.attrs["n_theta"] == 200 and error.attrs["n_draws"] == 10


def test_a_noisier_reduced_simulator_shows_its_spread(test_store: Path) -> None:
    reduced = make_simulator("gaussian_linear", dim=3, noise_var=0.3)
    error = measure_emulator_error(reduced, test_store, seed=0, n_draws=10)
    expected = math.sqrt(0.3) - math.sqrt(0.1)  # 0.231
    np.testing.assert_allclose(error["std_error"].values, expected, atol=0.03)
    assert np.abs(error["mean_error"].values).max() < 0.05
    assert float(error["c2st"]) > 0.6


def test_a_perturbed_emulator_shows_its_bias_in_the_mean_error(
    full_checkpoint: Path, test_store: Path, tmp_path: Path
) -> None:
    base = Emulator.load(full_checkpoint)
    level = PerturbedLevel(
        kind="perturbed", name="biased", simplification=1, base="full", bias=BIAS
    )
    perturbed = PerturbedEmulator(base, level)
    error_base = measure_emulator_error(base, test_store, seed=0, n_draws=10)
    error = measure_emulator_error(perturbed, test_store, seed=0, n_draws=10, level="biased")
    assert np.abs(error_base["mean_error"].values).max() < 0.05
    np.testing.assert_allclose(error["mean_error"].values, BIAS, atol=0.05)
    assert float(error["nll"]) > float(error_base["nll"]) + 0.2  # the density moved too
    path = save_emulator_error(error, tmp_path / "emulator_error.zarr")
    again = load_emulator_error(path)
    assert again.attrs["level"] == "biased"
    np.testing.assert_array_equal(again["mean_error"].values, error["mean_error"].values)
    save_emulator_error(error_base, path)  # replacing an older measurement is allowed
    with pytest.raises(StoreError, match="is not an emulator-error store"):
        save_emulator_error(error, test_store)


def test_bad_requests_are_refused(full_checkpoint: Path, test_store: Path) -> None:
    with pytest.raises(ConfigError, match="n_draws must be at least 2"):
        measure_emulator_error(Emulator.load(full_checkpoint), test_store, n_draws=1)
    other = make_simulator("gaussian_linear", dim=4)
    with pytest.raises(ConfigError, match="has outputs"):
        measure_emulator_error(other, test_store)


def test_emulator_error_uses_the_posterior_scores_estimators(test_store: Path) -> None:
    """One two-sample toolkit: the C2ST and MMD of emulator error are inference.c2st/mmd."""
    from inference.c2st import c2st
    from inference.mmd import mmd

    reduced = make_simulator("gaussian_linear", dim=3, noise_var=0.3)
    error = measure_emulator_error(reduced, test_store, seed=3, n_theta=50, n_draws=4)
    truth = make_simulator("gaussian_linear", dim=3, noise_var=0.1)
    theta = load_pairs(test_store, limit=50)[0]
    repeated = np.repeat(theta, 4, axis=0)
    rows = np.arange(len(repeated))
    a = np.hstack([repeated, truth.simulate(repeated, sample_seeds(3, rows, Stream.SIMULATION))])
    b = np.hstack([repeated, reduced.simulate(repeated, sample_seeds(3, rows, Stream.PRIOR))])
    assert float(error["c2st"]) == pytest.approx(c2st(a, b, 3), abs=1e-12)
    assert float(error["mmd"]) == pytest.approx(mmd(a, b), abs=1e-12)


def test_blocks_of_thetas_give_the_measurement_of_one_call(test_store: Path) -> None:
    """The emulate stage draws in blocks of thetas on many workers: the same values."""
    reduced = make_simulator("gaussian_linear", dim=3, noise_var=0.3)
    truth = make_simulator("gaussian_linear", dim=3, noise_var=0.1)
    whole = measure_emulator_error(reduced, test_store, truth=truth, seed=3, n_theta=60, n_draws=4)
    theta, x, outputs = held_out(test_store, 60)
    blocks = [
        draw_block(reduced, truth, theta, 4, 3, a, b) for a, b in ((40, 60), (0, 25), (25, 40))
    ]
    joined = error_dataset(reduced, truth.name, theta, x, blocks, outputs, 4, 3)
    timed = {"stand_in_samples_per_second", "simulator_samples_per_second", "speedup"}
    for name in set(whole.data_vars) - timed:
        np.testing.assert_array_equal(joined[name].values, whole[name].values, err_msg=name)
    other = error_dataset(reduced, truth.name, theta, x, blocks[:1] * 3, outputs, 4, 3)
    assert float(other["c2st"]) != float(whole["c2st"])  # the comparison can fail


LADDER = [
    FULL,
    *(
        FidelityLevel(
            name=f"cut-{i}",
            simplification=float(i),
            emulator=EmulatorSpec(transforms=1, hidden_layers=1, **knobs),
        )
        for i, knobs in enumerate(
            [
                {
                    "hidden_features": 8,
                    "train_samples": 400,
                    "batch_size": 64,
                    "patience": 10,
                    "learning_rate": 3e-3,
                    "max_epochs": 100,
                },
                {
                    "hidden_features": 4,
                    "train_samples": 100,
                    "batch_size": 32,
                    "patience": 5,
                    "learning_rate": 3e-3,
                    "max_epochs": 40,
                },
                {"hidden_features": 2, "train_samples": 50, "batch_size": 16, "max_epochs": 4},
                {"hidden_features": 1, "train_samples": 20, "max_epochs": 1},
            ],
            start=1,
        )
    ),
]
"""Five levels cutting training rows (1800 to 18), width (16 to 1) and epochs."""


@pytest.mark.slow
def test_measured_error_grows_along_a_ladder_that_cuts_data_and_capacity(
    full_checkpoint: Path, shared_gaussian_store: Path, test_store: Path, tmp_path: Path
) -> None:
    rows = []
    for level in LADDER:
        checkpoint = (
            full_checkpoint
            if level is FULL
            else train_emulator(
                shared_gaussian_store, level, tmp_path / level.name, seed=0, progress=False
            )
        )
        error = measure_emulator_error(Emulator.load(checkpoint), test_store, seed=0, n_draws=10)
        rows.append([float(error["nll"]), float(error["mmd"]), float(error["mean_rmse"].mean())])
    rows = np.array(rows)
    simplification = [level.simplification for level in LADDER]
    for column, name in enumerate(["nll", "mmd", "mean_rmse"]):
        rho = spearmanr(simplification, rows[:, column]).statistic
        assert rho >= 0.9 - 1e-9, (name, rho, rows[:, column])  # 0.9 is one swap in five
    assert rows[-1, 0] > rows[0, 0] + 1.0  # the crudest level is far worse, not merely noisier
