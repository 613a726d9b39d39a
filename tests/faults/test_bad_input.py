"""Bad input is refused with a message naming the field, the problem and the fix (issue 7).

Configs (unknown keys, wrong types, negative budgets, empty ladders, levels without a
simplification, unknown simulators, a study folder holding another study's data) and observations
(NaN, wrong shape, outside the prior's support). Nothing stored is overwritten.
tests/pipelines/test_config.py checks that such configs fail at all; these check the messages.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import yaml

from inference import NPEPosterior, NPESettings, score_posterior, train_npe
from inference.reference import ExactReference
from pipelines.cli import main
from pipelines.config import load_config
from pipelines.study import run_stages
from simulators import ConfigError, GaussianLinear, Parameter, Prior
from simulators.registry import ENTRY_POINT_GROUP

ROOT = Path(__file__).parents[2]
BUILT_INS = "external, gaussian_linear, hodgkin_huxley, lorenz96, lorenz96_reduced"

# A small study: Gaussian linear in 2-D, three levels, budgets that simulate in a second.
SMALL = {
    "name": "small",
    "seed": 3,
    "simulator": {"name": "gaussian_linear", "settings": {"dim": 2}},
    "budgets": {"train": 40, "test": 20, "observations": 2, "chunk_size": 20},
    "ladder": [
        {"name": "wide", "simplification": 0, "emulator": {"family": "gaussian"}},
        {"name": "narrow", "simplification": 1, "emulator": {"family": "gaussian"}},
        {"name": "tiny", "simplification": 2, "emulator": {"family": "gaussian"}},
    ],
    "cluster": {"overrides": {"n_workers": 1, "dashboard_address": "127.0.0.1:0"}},
}


def _config(tmp_path: Path, mutate=None, name: str = "study.yaml", **changes) -> Path:
    raw = yaml.safe_load(yaml.safe_dump({**SMALL, "output_dir": str(tmp_path / "studies")}))
    raw.update(changes)
    if mutate is not None:
        mutate(raw)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _set(*keys_and_value):
    *keys, last, value = keys_and_value

    def mutate(raw):
        for key in keys:
            raw = raw[key]
        raw[last] = value

    return mutate


def _drop(*keys):
    *keys, last = keys

    def mutate(raw):
        for key in keys:
            raw = raw[key]
        del raw[last]

    return mutate


# (config change, parts the message must hold: the field, the problem, the fix)
BAD_CONFIGS = {
    "unknown top-level key": (
        _set("seeds", 4),
        ["seeds: Extra inputs are not permitted", "remove `seeds` or correct its spelling",
         "the config takes: name, seed, output_dir, simulator, budgets, ladder"],
    ),
    "unknown key of a level's emulator": (
        _set("ladder", 1, "emulator", "hiden_features", 8),
        ["ladder.1.emulator.hiden_features: Extra inputs are not permitted",
         "ladder.1.emulator takes: family, hidden_features, hidden_layers"],
    ),
    "string for an integer": (
        _set("budgets", "train", "many"),
        ["budgets.train: Input should be a valid integer", "(got 'many')",
         "write budgets.train as <whole number>"],
    ),
    "string for a number": (
        _set("ladder", 2, "simplification", "high"),
        ["ladder.2.simplification: Input should be a valid number", "(got 'high')",
         "write ladder.2.simplification as <number>"],
    ),
    "list for a mapping": (
        _set("budgets", [40, 20, 2]),
        ["budgets: Input should be a valid dictionary", "(got [40, 20, 2])",
         "write budgets as a mapping of `key: value` entries with keys from: train, test, "
         "observations"],
    ),
    "text for a mapping": (
        _set("simulator", "gaussian_linear"),
        ["simulator: Input should be a valid dictionary", "(got 'gaussian_linear')",
         "with keys from: name, settings"],
    ),
    "mapping for a list": (
        _set("ladder", {"name": "wide", "simplification": 0}),
        ["ladder: Input should be a valid tuple", "write ladder as a list"],
    ),
    "negative budget": (
        _set("budgets", "test", -20),
        ["budgets.test: Input should be greater than 0 (got -20)",
         "set budgets.test to a number greater than 0"],
    ),
    "zero observations": (
        _set("budgets", "observations", 0),
        ["budgets.observations: Input should be greater than 0 (got 0)",
         "set budgets.observations to a number greater than 0"],
    ),
    "negative seed": (
        _set("seed", -1),
        ["seed: Input should be greater than or equal to 0 (got -1)",
         "set seed to a number at least 0"],
    ),
    "empty ladder": (
        _set("ladder", []),
        ["ladder: Tuple should have at least 1 item", "add at least one level, e.g. `- {name:"],
    ),
    "level without a simplification": (
        _drop("ladder", 2, "simplification"),
        ["ladder.2.simplification: Field required", "add `simplification: <number>` to ladder.2"],
    ),
    "missing budgets": (
        _drop("budgets"),
        ["budgets: Field required",
         "add `budgets: {train: <whole number>, test: <whole number>, ...}`"],
    ),
    "unknown simulator": (
        _set("simulator", "name", "gaussian_linaer"),
        ["simulator.name", "unknown simulator 'gaussian_linaer'", f"known simulators: {BUILT_INS}",
         f"register your own under the entry-point group {ENTRY_POINT_GROUP!r}"],
    ),
    "unknown reduced simulator": (
        _set("ladder", 0, {"name": "wide", "simplification": 0, "kind": "reduced_simulator",
                           "simulator": {"name": "gauss"}}),
        ["unknown simulator 'gauss'", f"known simulators: {BUILT_INS}"],
    ),
    "simulator setting of the wrong type": (
        _set("simulator", "settings", "dim", "two"),
        ["invalid settings {'dim': 'two'} for simulator 'gaussian_linear'",
         "it takes: dim (default 10), prior_var (default 0.1), noise_var (default 0.1)",
         "Fix the names and types of simulator.settings"],
    ),
}  # fmt: skip


@pytest.mark.parametrize(("mutate", "expected"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_a_bad_config_names_the_field_the_problem_and_the_fix(tmp_path, mutate, expected):
    path = _config(tmp_path, mutate)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path} is not a valid study config:")
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"


def test_the_small_config_itself_is_valid(tmp_path):
    config = load_config(_config(tmp_path))
    assert [level.name for level in config.ladder] == ["wide", "narrow", "tiny"]


@pytest.mark.slow
def test_the_command_line_shows_the_message_without_a_traceback(tmp_path):
    path = _config(tmp_path, _drop("ladder", 2, "simplification"))
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "80"},
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert f"error: {path} is not a valid study config:" in done.stderr
    # unwrapped, so the line reads whole whatever the terminal width
    line = "ladder.2.simplification: Field required; add `simplification: <number>` to ladder.2"
    assert line in done.stderr


def _snapshot(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every file and folder below ``folder``: content hash, mode and modification time."""
    found = {}
    for path in sorted([folder, *folder.rglob("*")]):
        stat = path.stat()
        content = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        found[str(path.relative_to(folder))] = (content, stat.st_mode, stat.st_mtime_ns)
    return found


@pytest.mark.slow
def test_a_study_folder_holding_another_studys_data_is_refused_and_kept(
    tmp_path, capsys, monkeypatch
):
    """Two configs named alike share a study folder; the second must not touch the first's data."""
    first = load_config(_config(tmp_path, name="first.yaml"))
    run_stages(first, ["simulate"], [], progress=False)
    folder = first.study_dir
    assert (folder / "simulations" / "train.zarr").is_dir()
    before = _snapshot(folder)

    second = _config(
        tmp_path, _set("simulator", "settings", {"dim": 2, "noise_var": 0.5}), name="second.yaml"
    )
    for command in (["simulate"], ["run"]):
        with pytest.raises(SystemExit) as exited:
            monkeypatch.setattr(sys, "argv", ["emustudy", *command, str(second), "--quiet"])
            main()
        assert exited.value.code == 2
        message = " ".join(capsys.readouterr().err.split())
        assert f"{folder} holds another study's data" in message
        assert "study 'small', simulator 'gaussian_linear' {'dim': 2}, seed 3" in message
        assert f"{folder / 'simulations' / 'train.zarr'}" in message
        assert "Nothing was changed. Give this study another `name` or `output_dir`" in message
        assert "--replace-stale" in message
        assert "Traceback" not in message
    assert _snapshot(folder) == before  # same bytes, modes and times; no file added or removed


# Observations


@pytest.fixture(scope="module")
def posterior() -> NPEPosterior:
    """A quickly trained NPE on a 2-D problem whose prior is bounded: a in [0, 1], b in [-2, 2]."""
    prior = Prior(
        parameters=(
            Parameter(name="a", distribution="uniform", low=0.0, high=1.0),
            Parameter(name="b", distribution="uniform", low=-2.0, high=2.0),
        )
    )
    theta = prior.sample(np.random.default_rng(0), 300)
    noise = np.random.default_rng(1).standard_normal((300, 3))
    x = np.c_[theta, theta.sum(axis=1)] + 0.1 * noise
    settings = NPESettings(hidden_features=8, num_transforms=1, max_num_epochs=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "not yet fully converged": on purpose
        return train_npe(theta, x, prior, settings, seed=0)


def _scores(posterior, *, x_obs=None, theta_test=None):
    rng = np.random.default_rng(2)
    theta = posterior.prior.sample(rng, 30) if theta_test is None else theta_test
    x = np.c_[theta, theta.sum(axis=1)]
    x_obs = x[:3] if x_obs is None else x_obs
    return score_posterior(
        posterior,
        x_obs=x_obs,
        reference_samples=np.zeros((len(np.atleast_2d(x_obs)), 50, 2)),
        theta_test=theta,
        x_test=np.nan_to_num(x),
        n_posterior_samples=50,
        n_sbc_samples=10,
        seed=0,
        n_lc2st_null=2,
    )


def test_an_observation_with_nan_is_named_by_its_index(posterior):
    x_obs = np.array([[0.5, 0.0, 0.5], [0.2, 1.0, 1.2], [0.1, np.nan, 0.0], [0.3, 0.1, np.inf]])
    with pytest.raises(ConfigError) as info:
        _scores(posterior, x_obs=x_obs)
    message = str(info.value)
    assert "x_obs[2] (observation 2) has NaN or infinite values at output column(s) [1]" in message
    assert "observations with such values: 2, 3" in message
    assert "Drop or replace those observations" in message
    with pytest.raises(
        ConfigError, match=r"x_o has NaN or infinite values at output column\(s\) \[1"
    ):
        posterior.sample(x_obs[2], 10, seed=0)
    with pytest.raises(ConfigError, match=r"x\[3\] \(observation 3\) has NaN"):
        posterior.sample_batched(x_obs[[0, 3]][[0, 0, 0, 1]], 10, seed=0)
    exact = ExactReference(GaussianLinear(dim=3))
    with pytest.raises(ConfigError, match=r"x_obs\[2\] \(observation 2\) has NaN"):
        exact.sample(x_obs, 10, seed=0)


@pytest.mark.parametrize(
    ("x_obs", "expected"),
    [
        (np.zeros((3, 2)), "got shape (3, 2)"),  # one output short
        (np.zeros(3), "got shape (3,)"),  # one observation, not a batch of them
        (np.zeros((2, 3, 1)), "got shape (2, 3, 1)"),
    ],
)
def test_observations_of_the_wrong_shape_are_refused_with_the_shape_wanted(
    posterior, x_obs, expected
):
    with pytest.raises(ConfigError) as info:
        _scores(posterior, x_obs=x_obs)
    message = str(info.value)
    assert "x_obs must have shape (n_obs, 3), one row of 3 simulator outputs per observation" in (
        message
    )
    assert expected in message and "reshape it" in message


def test_a_single_observation_of_the_wrong_shape_says_which_shape(posterior):
    with pytest.raises(
        ConfigError, match=r"x_o must have shape \(3,\) \(one observation\), got shape \(1, 3\)"
    ):
        posterior.sample(np.zeros((1, 3)), 10, seed=0)
    with pytest.raises(ConfigError, match=r"x_o must hold numbers"):
        posterior.sample(["a", "b", "c"], 10, seed=0)


def test_true_parameters_outside_the_priors_support_are_named(posterior):
    theta = posterior.prior.sample(np.random.default_rng(3), 30)
    theta[7] = [0.5, 2.5]  # b above its upper bound 2
    theta[11] = [-0.1, 0.0]  # a below 0
    theta[12] = [np.nan, 0.0]  # not finite: dropped and counted as invalid, as before
    with pytest.raises(ConfigError) as info:
        _scores(posterior, theta_test=theta)
    message = str(info.value)
    assert "theta_test[7] lies outside the prior's support: b = 2.5 is not in [-2, 2]" in message
    assert "(rows outside: 7, 11)" in message
    assert "drop those rows, or use pairs simulated from this prior" in message
