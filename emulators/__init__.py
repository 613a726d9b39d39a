"""Emulators: cheaper neural stand-ins for a costly simulator, one per fidelity level."""

from emulators.data import StoreDataModule
from emulators.emulator import CheckpointError, Emulator
from emulators.fidelity import EmulatorSpec, FidelityLevel
from emulators.module import ConditionalDensityModule
from emulators.train import train_emulator

__all__ = [
    "CheckpointError",
    "ConditionalDensityModule",
    "Emulator",
    "EmulatorSpec",
    "FidelityLevel",
    "StoreDataModule",
    "train_emulator",
]
