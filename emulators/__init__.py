"""Emulators: cheaper stand-ins for a costly simulator, one per fidelity level.

The names below are imported on first use: Lightning alone takes seconds to import, and every
``emustudy`` process (and each Dask worker or child process it spawns, which imports the
command's module again) would pay that although only emulator training and emulation need it.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CheckpointError": "emulators.emulator",
    "ConditionalDensityModule": "emulators.module",
    "Emulator": "emulators.emulator",
    "EmulatorSpec": "emulators.fidelity",
    "FidelityLevel": "emulators.fidelity",
    "Level": "emulators.fidelity",
    "PerturbedEmulator": "emulators.levels",
    "PerturbedLevel": "emulators.fidelity",
    "ReducedSimulatorLevel": "emulators.fidelity",
    "SimulatorRef": "emulators.fidelity",
    "StoreDataModule": "emulators.data",
    "check_compatible": "emulators.ladder",
    "check_ladder": "emulators.ladder",
    "level_simulator": "emulators.levels",
    "parse_level": "emulators.fidelity",
    "train_emulator": "emulators.train",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'emulators' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
