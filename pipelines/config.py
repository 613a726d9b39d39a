"""The study config: one YAML file, validated on load into frozen, typed settings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from emulators.fidelity import FidelityLevel, check_folder_name
from inference.settings import NPESettings
from simulators.base import ExactPosterior
from simulators.errors import ConfigError
from simulators.registry import available_simulators, make_simulator

__all__ = [
    "SimulatorConfig",
    "Budgets",
    "ScoreSettings",
    "ClusterSettings",
    "StudyConfig",
    "load_config",
    "digest",
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SimulatorConfig(_Frozen):
    """Which registered simulator the study treats as the truth, and its settings."""

    name: str
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        known = available_simulators()
        if name not in known:
            raise ValueError(f"unknown simulator {name!r}; known simulators: {', '.join(known)}")
        return name


class Budgets(_Frozen):
    """Numbers of simulator and emulator runs."""

    train: int = Field(
        gt=0, description="true-simulator runs for emulators and the ceiling posterior"
    )
    test: int = Field(
        gt=0, description="held-out true-simulator pairs for NLTP, SBC and emulator error"
    )
    observations: int = Field(gt=0, description="observations at which posteriors are compared")
    emulated: int | None = Field(None, gt=0, description="emulator runs per level; default: train")
    chunk_size: int = Field(500, gt=0, description="rows per store chunk = per Dask task")

    @property
    def emulated_runs(self) -> int:
        """Emulator runs each level's posterior is trained on."""
        return self.emulated or self.train


class ScoreSettings(_Frozen):
    """How posteriors are scored against the truth."""

    posterior_samples: int = Field(1000, gt=0, description="samples per observation for C2ST")
    sbc_samples: int = Field(200, gt=0, description="posterior samples per test pair for SBC ranks")


class ClusterSettings(_Frozen):
    """The Dask cluster a study runs on."""

    profile: str = "local"
    profiles_file: Path | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)


class StudyConfig(_Frozen):
    """A whole study: the truth, the budgets, the fidelity ladder, inference, scores, cluster."""

    name: str
    seed: int = Field(0, ge=0)
    output_dir: Path = Path("studies")
    simulator: SimulatorConfig
    budgets: Budgets
    ladder: tuple[FidelityLevel, ...] = Field(min_length=1)
    inference: NPESettings = NPESettings()
    scores: ScoreSettings = ScoreSettings()
    cluster: ClusterSettings = ClusterSettings()

    @field_validator("name")
    @classmethod
    def _folder_safe(cls, name: str) -> str:
        return check_folder_name(name, "study")

    @model_validator(mode="after")
    def _consistent(self) -> StudyConfig:
        names = [level.name for level in self.ladder]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"ladder level names must be unique, repeated: {duplicates}")
        if "ceiling" in names:
            raise ValueError(
                "'ceiling' is reserved for the posterior trained on true-simulator data"
            )
        for level in self.ladder:
            wanted = level.emulator.train_samples
            if wanted is not None and wanted > self.budgets.train:
                raise ValueError(
                    f"level {level.name!r} asks for emulator.train_samples={wanted} but "
                    f"budgets.train is {self.budgets.train}; lower it or raise budgets.train"
                )
        try:
            simulator = make_simulator(self.simulator.name, **self.simulator.settings)
        except ConfigError as err:
            raise ValueError(str(err)) from err
        if not isinstance(simulator, ExactPosterior):
            raise ValueError(
                f"simulator {self.simulator.name!r} has no exact posterior; this version scores "
                "posteriors against exact posteriors only (reference posteriors trained on "
                "true-simulator data are planned), so pick a simulator with one, e.g. "
                "gaussian_linear"
            )
        return self

    @property
    def study_dir(self) -> Path:
        """The study folder: ``output_dir / name``."""
        return self.output_dir / self.name


def digest(*parts: Any) -> str:
    """A short, stable hash of JSON-serialisable parts (pydantic models allowed)."""
    plain = [p.model_dump(mode="json") if isinstance(p, BaseModel) else p for p in parts]
    text = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _describe(err: ValidationError) -> str:
    lines = []
    for item in err.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        received = item.get("input")
        shown = "" if isinstance(received, dict) else f" (got {received!r})"
        lines.append(f"  {where}: {item['msg']}{shown}")
    return "\n".join(lines)


def load_config(path: Path, **overrides: Any) -> StudyConfig:
    """Read and validate a study config.

    YAML is parsed with ``yaml.safe_load``: tags that construct Python objects are refused.

    Raises
    ------
    ConfigError
        Naming every invalid field, the value received and what is allowed.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(f"cannot read study config {path}: {err}") from err
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML (only plain YAML is accepted): {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, got {type(raw).__name__}")
    try:
        return StudyConfig.model_validate({**raw, **overrides})
    except ValidationError as err:
        raise ConfigError(f"{path} is not a valid study config:\n{_describe(err)}") from err
