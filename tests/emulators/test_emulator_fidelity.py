"""Fidelity levels and emulator specs validate their input."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from emulators import EmulatorSpec, FidelityLevel


def test_defaults_and_round_trip() -> None:
    level = FidelityLevel(name="full-1_a", simplification=0.5, emulator=EmulatorSpec())
    assert level.emulator.family == "maf"
    assert level.emulator.train_samples is None
    assert FidelityLevel.model_validate(level.model_dump(mode="json")) == level


@pytest.mark.parametrize("name", ["", "has space", "a/b", "..", "naïve", "x.y"])
def test_unsafe_level_name_is_refused(name: str) -> None:
    with pytest.raises(ValidationError, match="folder name"):
        FidelityLevel(name=name, simplification=0.0, emulator=EmulatorSpec())


@pytest.mark.parametrize(
    "field",
    [
        "hidden_features",
        "hidden_layers",
        "transforms",
        "train_samples",
        "max_epochs",
        "patience",
        "batch_size",
        "learning_rate",
    ],
)
@pytest.mark.parametrize("value", [0, -1])
def test_non_positive_sizes_are_refused(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        EmulatorSpec(**{field: value})


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5])
def test_validation_fraction_must_be_inside_zero_one(fraction: float) -> None:
    with pytest.raises(ValidationError, match="validation_fraction"):
        EmulatorSpec(validation_fraction=fraction)


def test_unknown_keys_and_families_are_refused() -> None:
    with pytest.raises(ValidationError, match="hidden_units"):
        EmulatorSpec(hidden_units=3)
    with pytest.raises(ValidationError, match="family"):
        EmulatorSpec(family="realnvp")
    with pytest.raises(ValidationError, match="extra"):
        FidelityLevel(name="a", simplification=0.0, emulator=EmulatorSpec(), colour="red")


def test_specs_are_frozen() -> None:
    spec = EmulatorSpec()
    with pytest.raises(ValidationError):
        spec.transforms = 5  # type: ignore[misc]
