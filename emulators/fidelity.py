"""Fidelity levels: how simplified an emulator is, declared as data.

A :class:`FidelityLevel` names one degree of simplification of the costly simulator and carries
the :class:`EmulatorSpec` that realises it (flow family and size, how many simulations it learns
from, how long it trains). The spec is a hyperparameter of one emulator class, not a subclass
per level, so adding a level is a config change.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["EmulatorSpec", "FidelityLevel", "check_folder_name"]

_SAFE_NAME = re.compile(r"[A-Za-z0-9_-]+")


class EmulatorSpec(BaseModel):
    """Architecture and training budget of one conditional density emulator ``q(x | theta)``.

    Attributes
    ----------
    family : {"maf", "nsf"}
        The zuko flow: masked autoregressive (affine) or neural spline flow.
    hidden_features : int
        Width of each hidden layer of the flow's conditioner networks.
    hidden_layers : int
        Number of hidden layers of each conditioner network.
    transforms : int
        Number of autoregressive transforms in the flow.
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
        Share of the rows held out to monitor the loss, in ``(0, 1)``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    family: Literal["maf", "nsf"] = "maf"
    hidden_features: int = Field(default=64, gt=0)
    hidden_layers: int = Field(default=2, gt=0)
    transforms: int = Field(default=3, gt=0)
    train_samples: int | None = Field(default=None, gt=0)
    max_epochs: int = Field(default=200, gt=0)
    patience: int = Field(default=10, gt=0)
    batch_size: int = Field(default=256, gt=0)
    learning_rate: float = Field(default=1e-3, gt=0, allow_inf_nan=False)
    validation_fraction: float = Field(default=0.1, gt=0, lt=1)


class FidelityLevel(BaseModel):
    """One named degree of simplification of the simulator.

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

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    simplification: float = Field(allow_inf_nan=False)
    description: str = ""
    emulator: EmulatorSpec

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        return check_folder_name(name, "fidelity level")


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
