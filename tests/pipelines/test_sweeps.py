"""A `sweep:` ladder entry expands into named levels whose simplification follows the knob."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

from emulators.fidelity import FidelityLevel, PerturbedLevel, ReducedSimulatorLevel
from pipelines.config import StudyConfig, load_config
from pipelines.sweeps import Sweep, expand_sweep, knob_values, sweep_values
from simulators.errors import ConfigError


def _study(ladder: list[dict]) -> dict:
    return {
        "name": "sweeps",
        "simulator": {"name": "gaussian_linear", "settings": {"dim": 2}},
        "budgets": {"train": 4000, "test": 100, "observations": 2},
        "ladder": ladder,
    }


def _load(tmp_path, ladder: list[dict]) -> StudyConfig:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(_study(ladder)))
    return load_config(path)


FULL = {"name": "full", "simplification": 0, "emulator": {"family": "maf"}}
DATA_SWEEP = {
    "sweep": {
        "name": "data",
        "base": {"emulator": {"family": "maf", "transforms": 2}},
        "knob": "emulator.train_samples",
        "range": {"start": 100, "stop": 4000, "num": 8, "log": True},
    }
}


def test_a_count_knob_expands_into_named_levels_simplified_by_decades_below_the_largest():
    sweep = Sweep(
        name="width", knob="emulator.hidden_features", values=(64, 8, 16, 32), description="w"
    )
    levels = expand_sweep(sweep)
    assert [lv["name"] for lv in levels] == ["width-64", "width-8", "width-16", "width-32"]
    assert [lv["emulator"]["hidden_features"] for lv in levels] == [64, 8, 16, 32]
    expected = [0.0, math.log10(8), math.log10(4), math.log10(2)]
    assert [lv["simplification"] for lv in levels] == pytest.approx(expected, abs=1e-12)
    assert levels[1]["description"] == "w; sweep width: emulator.hidden_features=8"
    assert knob_values(sweep) == {"width-64": 64, "width-8": 8, "width-16": 16, "width-32": 32}


def test_a_log_range_of_whole_numbers_is_rounded_and_ends_at_its_bounds():
    sweep = Sweep.model_validate(DATA_SWEEP["sweep"])
    values = sweep_values(sweep)
    assert values == (100, 169, 287, 486, 823, 1394, 2362, 4000)
    assert all(isinstance(v, int) for v in values)
    simplification = [lv["simplification"] for lv in expand_sweep(sweep)]
    assert simplification[0] == pytest.approx(math.log10(40)) and simplification[-1] == 0.0
    assert all(a > b for a, b in zip(simplification, simplification[1:], strict=False))


def test_perturbation_and_settings_knobs_name_floats_safely_and_follow_the_stated_direction():
    noise = Sweep(
        name="noise",
        base={"kind": "perturbed", "base": "full"},
        knob="bias",
        values=(-0.5, 0.0, 0.25),
        simplification_offset=2.0,
    )
    levels = expand_sweep(noise)
    assert [lv["name"] for lv in levels] == ["noise-m0p5", "noise-0", "noise-0p25"]
    assert [lv["simplification"] for lv in levels] == [2.5, 2.0, 2.25]
    base = {"kind": "reduced_simulator", "simulator": {"name": "gaussian_linear"}}
    for simpler, expected in (("larger", [0.0, 1.0, 2.0]), ("smaller", [2.0, 1.0, 0.0])):
        coarse = Sweep(
            name="dt",
            base=base,
            knob="simulator.settings.noise_var",
            values=(0.001, 0.01, 0.1),
            simpler=simpler,
        )
        levels = expand_sweep(coarse)
        assert [lv["simulator"]["settings"]["noise_var"] for lv in levels] == [0.001, 0.01, 0.1]
        assert [lv["simplification"] for lv in levels] == pytest.approx(expected)
    assert [lv["name"] for lv in levels] == ["dt-0p001", "dt-0p01", "dt-0p1"]


@pytest.mark.parametrize(
    ("sweep", "message"),
    [
        (
            {"name": "s", "knob": "emulator.train_sample", "values": [1, 2]},
            r"unknown knob 'emulator.train_sample'; a sweep's knob is one of: "
            r"emulator.train_samples, .*bias, extra_noise_std, simulator.settings.<key>",
        ),
        (
            {"name": "s", "knob": "bias", "values": [0.1, 0.2]},
            r"knob 'bias' belongs to 'perturbed' levels but base has kind 'emulator'",
        ),
        (
            {
                "name": "s",
                "knob": "emulator.transforms",
                "values": [1, 2],
                "range": {"start": 1, "stop": 4, "num": 4},
            },
            r"give either `values: \[...\]` or `range",
        ),
        (
            {"name": "s", "knob": "emulator.transforms", "values": [1, 1.5]},
            r"must be whole numbers",
        ),
        (
            {
                "name": "s",
                "knob": "emulator.transforms",
                "range": {"start": 1, "stop": 2, "num": 4},
            },
            r"values repeat \(\[1, 1, 2, 2\]\)",
        ),
        (
            {
                "name": "s",
                "base": {"kind": "reduced_simulator", "simulator": {"name": "gaussian_linear"}},
                "knob": "simulator.settings.noise_var",
                "values": [0.1, 0.2],
            },
            r"add `simpler: larger`",
        ),
        (
            {
                "name": "s",
                "base": {"emulator": {"max_epochs": 5}},
                "knob": "emulator.max_epochs",
                "values": [5, 10],
            },
            r"base already sets 'emulator.max_epochs'",
        ),
    ],
)
def test_bad_sweeps_are_refused_with_the_knob_and_the_fix(sweep, message):
    with pytest.raises(ValueError, match=message):
        expand_sweep(Sweep.model_validate(sweep))


def test_a_level_the_base_cannot_take_names_the_level_and_value():
    sweep = Sweep(
        name="mix", base={"emulator": {"family": "nsf"}}, knob="emulator.components", values=(1, 2)
    )
    with pytest.raises(ValueError, match=r"level 'mix-1' \(emulator.components=1\) is invalid"):
        expand_sweep(sweep)


def test_a_study_with_an_8_level_sweep_and_a_second_sweep_loads_and_round_trips(tmp_path):
    noise = {
        "sweep": {
            "name": "noise",
            "base": {"kind": "perturbed", "base": "full"},
            "knob": "extra_noise_std",
            "values": [0.1, 0.2, 0.4, 0.8],
        }
    }
    config = _load(tmp_path, [FULL, DATA_SWEEP, noise])
    names = [level.name for level in config.ladder]
    assert names[:3] == ["full", "data-100", "data-169"] and names[8] == "data-4000"
    assert names[9:] == ["noise-0p1", "noise-0p2", "noise-0p4", "noise-0p8"]
    assert all(isinstance(level, FidelityLevel) for level in config.ladder[:9])
    assert all(isinstance(level, PerturbedLevel) for level in config.ladder[9:])
    assert config.ladder[1].emulator.train_samples == 100
    assert config.ladder[1].emulator.transforms == 2
    assert [s.name for s in config.sweeps] == ["data", "noise"]
    dumped = yaml.safe_load(yaml.safe_dump(config.model_dump(mode="json")))
    assert StudyConfig.model_validate(dumped) == config  # the resolved config reloads as is


def test_a_settings_sweep_builds_reduced_simulator_levels(tmp_path):
    sweep = {
        "sweep": {
            "name": "coarse",
            "base": {"kind": "reduced_simulator", "simulator": {"name": "gaussian_linear"}},
            "knob": "simulator.settings.dim",
            "values": [2, 3],
            "simpler": "larger",
        }
    }
    with pytest.raises(ConfigError, match=r"reduced_simulator level 'coarse-3'"):
        _load(tmp_path, [FULL, sweep])  # dim 3 has other parameters than the dim-2 truth
    sweep["sweep"]["base"]["simulator"]["settings"] = {"dim": 2}
    sweep["sweep"].update(knob="simulator.settings.noise_var", values=[0.1, 0.2])
    config = _load(tmp_path, [FULL, sweep])
    assert all(isinstance(level, ReducedSimulatorLevel) for level in config.ladder[1:])
    assert [level.simulator.settings for level in config.ladder[1:]] == [
        {"dim": 2, "noise_var": 0.1},
        {"dim": 2, "noise_var": 0.2},
    ]


@pytest.mark.parametrize(
    ("ladder", "message"),
    [
        (
            [FULL, {**DATA_SWEEP, "name": "x"}],
            r"ladder\.1\.sweep: a sweep entry holds only `sweep:`; move \['name'\] into it",
        ),
        ([FULL, DATA_SWEEP, DATA_SWEEP], r"level names must be unique, repeated: \['data-100'"),
        (
            [FULL, {"sweep": {"name": "s", "knob": "emulator.depth", "values": [1, 2]}}],
            r"ladder\.1\.sweep: knob: unknown knob 'emulator.depth'; a sweep's knob is one of",
        ),
        (
            [FULL, {"sweep": {"name": "s", "knob": "emulator.transforms"}}],
            r"ladder\.1\.sweep: sweep: sweep 's': give either",
        ),
    ],
)
def test_bad_sweeps_in_a_study_config_name_the_entry(tmp_path, ladder, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, ladder)


def test_sweeps_given_outside_the_ladder_are_refused(tmp_path):
    raw = _study([FULL]) | {"sweeps": [DATA_SWEEP["sweep"]]}
    with pytest.raises(ValueError, match=r"generates levels \['data-100'.* that the ladder lacks"):
        StudyConfig.model_validate(raw)


def test_the_readme_sweep_example_loads(tmp_path):
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("### Sweeps and dose-response") :]
    block = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = _load(tmp_path, yaml.safe_load(block)["ladder"])
    assert len(config.ladder) == 13 and config.ladder[-1].name == "noise-0p8"
    assert config.ladder[-1].simplification == pytest.approx(2.8)
