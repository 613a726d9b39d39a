"""Fidelity levels: how simplified a stand-in for the simulator is, declared as data.

A ladder is an ordered list of levels; each has a name, a numeric ``simplification`` (the x axis
of plots) and one of three kinds, told apart by ``kind``:

* ``emulator`` (:class:`FidelityLevel`, the default when ``kind`` is left out): a neural
  conditional density ``q(x | theta)`` described by an :class:`EmulatorSpec` (family, capacity,
  training data, training effort);
* ``reduced_simulator`` (:class:`ReducedSimulatorLevel`): another registered simulator, or the
  same one with other settings, with the same parameter and output names;
* ``perturbed`` (:class:`PerturbedLevel`): the emulator of another level plus a declared bias
  and/or extra Gaussian noise in ``x``, to control misspecification exactly.

The spec is a hyperparameter of one emulator class, not a subclass per level, so adding a level
is a config change.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

__all__ = [
    "MIN_ROWS",
    "AnyLevel",
    "FLOW_FAMILIES",
    "MIXTURE_FAMILIES",
    "EmulatorSpec",
    "FidelityLevel",
    "FinetuneLevel",
    "Level",
    "PerturbedLevel",
    "ReducedSimulatorLevel",
    "SimulatorRef",
    "check_folder_name",
    "parse_level",
]

MIN_ROWS = 10
"""The fewest valid training rows an emulator is trained on."""

_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+")
FLOW_FAMILIES = ("maf", "nsf")
"""Normalizing-flow families (zuko); capacity knob ``transforms``."""
MIXTURE_FAMILIES = ("mdn", "gaussian")
"""Mixture families: ``mdn`` (knob ``components``) and ``gaussian`` (one component)."""
_DEFAULT_TRANSFORMS = 3
_DEFAULT_COMPONENTS = 5


class EmulatorSpec(BaseModel):
    """Architecture and training budget of one conditional density emulator ``q(x | theta)``.

    Attributes
    ----------
    family : {"maf", "nsf", "mdn", "gaussian"}
        ``maf``/``nsf``: zuko masked autoregressive (affine) flow, or neural spline flow with
        coupling layers (as sbi's ``nsf``); ``mdn``: a
        mixture density network of diagonal Gaussians; ``gaussian``: a heteroscedastic Gaussian
        (an MLP giving the mean and diagonal log standard deviation of ``x`` given ``theta``).
    hidden_features : int
        Width of each hidden layer (of the flow's conditioners, or of the mixture's MLP).
    hidden_layers : int
        Number of hidden layers.
    transforms : int or None
        Number of flow transforms (flows only; default 3). Refused for the other families.
    components : int or None
        Number of mixture components (``mdn`` only; default 5). Refused for the other families.
    train_samples : int or None
        How many of the store's valid rows the emulator learns from (the first ones, in store
        order); ``None`` uses them all.
    max_epochs : int
        Upper bound on training epochs.
    patience : int
        Epochs without improvement of the validation loss before training stops.
    batch_size : int
        Rows per gradient step.
    learning_rate : float
        Adam's learning rate.
    validation_fraction : float
        Share of the rows held out to monitor the loss, in ``(0, 1)``; a row is held out by a
        seeded hash of its store index, so the split does not depend on chunking.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: Literal["maf", "nsf", "mdn", "gaussian"] = "maf"
    hidden_features: int = Field(default=64, gt=0)
    hidden_layers: int = Field(default=2, gt=0)
    transforms: int | None = Field(default=None, gt=0)
    components: int | None = Field(default=None, gt=0)
    train_samples: int | None = Field(default=None, gt=0)
    max_epochs: int = Field(default=200, gt=0)
    patience: int = Field(default=10, gt=0)
    batch_size: int = Field(default=256, gt=0)
    learning_rate: float = Field(default=1e-3, gt=0, allow_inf_nan=False)
    validation_fraction: float = Field(default=0.1, gt=0, lt=1)

    @model_validator(mode="before")
    @classmethod
    def _family_knobs(cls, data: Any) -> Any:
        """Refuse a capacity knob the family does not have; fill the family's default."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        family = data.get("family", "maf")
        knobs = {"transforms": FLOW_FAMILIES, "components": ("mdn",)}
        for knob, families in knobs.items():
            if data.get(knob) is not None and family not in families:
                raise ValueError(
                    f"{knob}={data[knob]!r} does not apply to family {family!r} (only to "
                    f"{', '.join(families)}); remove {knob} or pick one of those families"
                )
        if family in FLOW_FAMILIES and data.get("transforms") is None:
            data["transforms"] = _DEFAULT_TRANSFORMS
        if family == "mdn" and data.get("components") is None:
            data["components"] = _DEFAULT_COMPONENTS
        return data

    @property
    def n_components(self) -> int:
        """Mixture components (1 for ``gaussian``; 0 for flows)."""
        if self.family == "gaussian":
            return 1
        return int(self.components or 0)


class _LevelBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    simplification: float = Field(allow_inf_nan=False)
    description: str = ""

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        return check_folder_name(name, "fidelity level")


class FidelityLevel(_LevelBase):
    """A level realised by a trained neural emulator (``kind: emulator``).

    Attributes
    ----------
    name : str
        Identifier used as a folder name: letters, digits, ``-`` and ``_`` only.
    simplification : float
        Declared degree of simplification, larger is more simplified (the x axis of plots).
    description : str
        Free text for reports.
    emulator : EmulatorSpec
        The emulator that realises this level.
    """

    kind: Literal["emulator"] = "emulator"
    emulator: EmulatorSpec


class SimulatorRef(BaseModel):
    """A registered simulator and its settings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    settings: dict[str, Any] = Field(default_factory=dict)


class ReducedSimulatorLevel(_LevelBase):
    """A level realised by a cheaper simulator (``kind: reduced_simulator``).

    Attributes
    ----------
    simulator : SimulatorRef
        A registered simulator with the same parameter and output names as the study's
        simulator, e.g. a one-scale Lorenz-96 with a closure, or a coarser time step.
    """

    kind: Literal["reduced_simulator"]
    simulator: SimulatorRef


class PerturbedLevel(_LevelBase):
    """The emulator of another level with a declared bias and/or extra noise (``kind: perturbed``).

    Attributes
    ----------
    base : str
        Name of an ``emulator`` level of the same ladder.
    bias : float or list of float
        Added to every output (a list: one value per output), in units of ``x``.
    extra_noise_std : float or list of float
        Standard deviation of independent Gaussian noise added to every output (per output with a
        list), in units of ``x``.
    """

    kind: Literal["perturbed"]
    base: str
    bias: float | tuple[float, ...] = 0.0
    extra_noise_std: float | tuple[float, ...] = 0.0

    @field_validator("bias", "extra_noise_std")
    @classmethod
    def _finite(cls, value: float | tuple[float, ...], info: Any) -> float | tuple[float, ...]:
        values = value if isinstance(value, tuple) else (value,)
        if not all(abs(v) < float("inf") for v in values):
            raise ValueError(f"{info.field_name} must be finite, got {value!r}")
        if info.field_name == "extra_noise_std" and any(v < 0 for v in values):
            raise ValueError(f"extra_noise_std must be >= 0 (a standard deviation), got {value!r}")
        return value


class FinetuneLevel(_LevelBase):
    """Another level's posterior fine-tuned on true-simulator runs (``kind: finetune``).

    Multi-fidelity NPE (Krouglova et al. 2025): the posterior trained on the ``base`` level's
    emulated data continues training on the study's first ``true_runs`` true-simulator
    training runs, stopping early on a validation split of them. Written in a ladder as
    ``- finetune: {base: NAME, true_runs: [0, 100, 300, 1000]}``, one level per count.

    Attributes
    ----------
    base : str
        Name of a level of the same ladder that is not itself a ``finetune`` level.
    true_runs : int
        How many true-simulator runs fine-tune it (0: the base's posterior as it is).
    learning_rate : float or None
        Adam's step size for fine-tuning; default the study's ``inference.learning_rate``.
    batch_size : int
        Pairs per gradient step (small: a few hundred runs make few batches).
    patience : int
        Epochs without improvement on the held-out true runs before fine-tuning stops.
    """

    kind: Literal["finetune"]
    base: str
    true_runs: int = Field(ge=0)
    learning_rate: float | None = Field(default=None, gt=0)
    batch_size: int = Field(default=50, gt=0)
    patience: int = Field(default=20, gt=0)


def _level_kind(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("kind", "emulator"))
    return str(getattr(value, "kind", "emulator"))


Level = Annotated[
    Annotated[FidelityLevel, Tag("emulator")]
    | Annotated[ReducedSimulatorLevel, Tag("reduced_simulator")]
    | Annotated[PerturbedLevel, Tag("perturbed")]
    | Annotated[FinetuneLevel, Tag("finetune")],
    Discriminator(
        _level_kind,
        custom_error_type="level_kind",
        custom_error_message="kind must be one of 'emulator', 'reduced_simulator', 'perturbed', "
        "'finetune'",
    ),
]
"""Any level of a ladder, told apart by ``kind`` (``emulator`` when left out)."""


def parse_level(
    raw: dict[str, Any],
) -> FidelityLevel | ReducedSimulatorLevel | PerturbedLevel | FinetuneLevel:
    """Validate one level given as a dict (e.g. from YAML or a checkpoint).

    Raises
    ------
    pydantic.ValidationError
        Naming the invalid field.
    """
    from pydantic import TypeAdapter

    return TypeAdapter(Level).validate_python(raw)


def check_folder_name(name: str, what: str) -> str:
    """Return ``name`` if it is safe as a folder name, else raise naming a safe alternative.

    Raises
    ------
    ValueError
        If ``name`` holds anything but letters, digits, '-' and '_' (pydantic reports it with
        the field's path).
    """
    if _SAFE_NAME.fullmatch(name):
        return name
    suggestion = re.sub(r"[^A-Za-z0-9_-]+", "_", name.strip()).strip("_") or f"{what}_1"
    raise ValueError(
        f"a {what} name is used as a folder name and may hold only letters, digits, '-' and "
        f"'_', got {name!r}; rename it, e.g. {suggestion.replace(' ', '_')!r}"
    )


AnyLevel = FidelityLevel | ReducedSimulatorLevel | PerturbedLevel | FinetuneLevel
"""Any level of a ladder, as :func:`parse_level` returns it."""
