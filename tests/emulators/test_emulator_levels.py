"""Level kinds: reduced simulators and perturbed emulators stand in for the simulator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError

from emulators import (
    Emulator,
    FidelityLevel,
    PerturbedEmulator,
    PerturbedLevel,
    ReducedSimulatorLevel,
    check_ladder,
    parse_level,
)
from emulators.levels import load_stand_in, write_stand_in
from pipelines.config import load_config
from simulators import ConfigError, Stream, make_simulator, sample_seeds

TRUTH = make_simulator("gaussian_linear", dim=3, noise_var=0.1)


def _perturbed(**fields: object) -> PerturbedLevel:
    return PerturbedLevel(kind="perturbed", name="p", simplification=2.0, base="full", **fields)


def _theta_and_seeds(n: int) -> tuple[np.ndarray, np.ndarray]:
    theta = TRUTH.prior.sample_from_seeds(sample_seeds(3, np.arange(n), Stream.PRIOR))
    return theta, sample_seeds(3, np.arange(n), Stream.SIMULATION)


def test_level_kinds_parse_and_an_emulator_level_needs_no_kind() -> None:
    plain = parse_level({"name": "a", "simplification": 0, "emulator": {"family": "nsf"}})
    assert isinstance(plain, FidelityLevel) and plain.kind == "emulator"
    reduced = parse_level(
        {
            "name": "r",
            "simplification": 1,
            "kind": "reduced_simulator",
            "simulator": {"name": "gaussian_linear", "settings": {"dim": 3}},
        }
    )
    assert isinstance(reduced, ReducedSimulatorLevel)
    perturbed = parse_level(
        {"name": "p", "simplification": 2, "kind": "perturbed", "base": "a", "bias": [1, 2, 3]}
    )
    assert isinstance(perturbed, PerturbedLevel) and perturbed.bias == (1.0, 2.0, 3.0)
    assert parse_level(perturbed.model_dump(mode="json")) == perturbed
    with pytest.raises(ValidationError, match="kind must be one of"):
        parse_level({"name": "x", "simplification": 0, "kind": "coarse"})
    with pytest.raises(ValidationError, match="extra_noise_std must be >= 0"):
        _perturbed(extra_noise_std=-1.0)


def test_perturbed_emulator_adds_its_bias_and_noise(full_checkpoint: Path) -> None:
    base = Emulator.load(full_checkpoint)
    theta, seeds = _theta_and_seeds(3000)
    x_base = base.simulate(theta, seeds)
    shifted = PerturbedEmulator(base, _perturbed(bias=[0.5, 0.0, -0.25]))
    np.testing.assert_allclose(shifted.simulate(theta, seeds) - x_base, [[0.5, 0.0, -0.25]] * 3000)
    np.testing.assert_allclose(
        shifted.log_prob(x_base + [0.5, 0.0, -0.25], theta), base.log_prob(x_base, theta)
    )
    noisy = PerturbedEmulator(base, _perturbed(extra_noise_std=0.3))
    x = noisy.simulate(theta, seeds)
    assert x.tobytes() == noisy.simulate(theta, seeds).tobytes()
    np.testing.assert_allclose(x[:5], noisy.simulate(theta[:5], seeds[:5]), rtol=0, atol=1e-6)
    np.testing.assert_allclose((x - x_base).std(axis=0), 0.3, rtol=0.06)
    assert np.abs((x - x_base).mean(axis=0)).max() < 0.03
    assert not noisy.has_density
    assert np.isnan(noisy.log_prob(x, theta)).all() and noisy.log_prob(x, theta).shape == (3000,)
    assert noisy.settings["extra_noise_std"] == [0.3, 0.3, 0.3]


def test_per_output_lists_need_one_value_per_output(full_checkpoint: Path) -> None:
    with pytest.raises(ConfigError, match="bias lists 2 values but the simulator has 3 outputs"):
        PerturbedEmulator(Emulator.load(full_checkpoint), _perturbed(bias=[1.0, 2.0]))


def test_check_ladder_refuses_levels_that_cannot_stand_in() -> None:
    full = FidelityLevel.model_validate(
        {"name": "full", "simplification": 0, "emulator": {"transforms": 1}}
    )
    other_dim = ReducedSimulatorLevel(
        kind="reduced_simulator",
        name="r",
        simplification=1,
        simulator={"name": "gaussian_linear", "settings": {"dim": 4}},
    )
    with pytest.raises(ConfigError, match=r"parameter names .*theta_3.* a stand-in must have"):
        check_ladder([full, other_dim], TRUTH)
    with pytest.raises(ConfigError, match="unknown simulator 'nope'"):
        bad = {**other_dim.model_dump(), "simulator": {"name": "nope"}}
        check_ladder([full, ReducedSimulatorLevel.model_validate(bad)], TRUTH)
    orphan = _perturbed().model_copy(update={"base": "missing"})
    with pytest.raises(ConfigError, match=r"base 'missing'.*one of \['full'\]"):
        check_ladder([full, orphan], TRUTH)
    check_ladder([full, _perturbed(bias=[0.1, 0.2, 0.3])], TRUTH)


def test_stand_in_records_round_trip(full_checkpoint: Path, tmp_path: Path) -> None:
    reduced = ReducedSimulatorLevel(
        kind="reduced_simulator",
        name="r",
        simplification=1,
        simulator={"name": "gaussian_linear", "settings": {"dim": 3, "noise_var": 0.3}},
    )
    rebuilt = load_stand_in(write_stand_in(reduced, tmp_path / "r.pt"))
    assert rebuilt.name == "gaussian_linear" and rebuilt.settings["noise_var"] == 0.3
    perturbed = load_stand_in(
        write_stand_in(_perturbed(bias=0.5), tmp_path / "p.pt", base_checkpoint=full_checkpoint)
    )
    assert isinstance(perturbed, PerturbedEmulator)
    theta, seeds = _theta_and_seeds(10)
    base = Emulator.load(full_checkpoint).simulate(theta, seeds)
    np.testing.assert_allclose(perturbed.simulate(theta, seeds), base + 0.5)
    assert isinstance(load_stand_in(full_checkpoint), Emulator)
    with pytest.raises(ConfigError, match="needs the checkpoint of its base"):
        write_stand_in(_perturbed(), tmp_path / "q.pt")


def test_study_config_accepts_every_kind_and_checks_them(tmp_path: Path) -> None:
    raw = yaml.safe_load(Path("configs/quickstart.yaml").read_text())
    raw["ladder"] += [
        {
            "name": "noisier",
            "simplification": 3,
            "kind": "reduced_simulator",
            "simulator": {"name": "gaussian_linear", "settings": {"dim": 5, "noise_var": 0.2}},
        },
        {"name": "biased", "simplification": 4, "kind": "perturbed", "base": "full", "bias": 0.1},
    ]
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    config = load_config(path)
    assert [level.kind for level in config.ladder][-2:] == ["reduced_simulator", "perturbed"]
    raw["ladder"][-1]["base"] = "noisier"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="base 'noisier', which is not an emulator level"):
        load_config(path)
    raw["ladder"][-1]["base"] = "full"
    raw["ladder"][-2]["simulator"]["settings"]["dim"] = 2
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="level 'noisier' has parameter names"):
        load_config(path)
