"""Emulators: cheaper stand-ins for a costly simulator, one per fidelity level."""

from emulators.data import StoreDataModule
from emulators.emulator import CheckpointError, Emulator
from emulators.fidelity import (
    EmulatorSpec,
    FidelityLevel,
    Level,
    PerturbedLevel,
    ReducedSimulatorLevel,
    SimulatorRef,
    parse_level,
)
from emulators.levels import PerturbedEmulator, check_compatible, check_ladder, level_simulator
from emulators.module import ConditionalDensityModule
from emulators.train import train_emulator

__all__ = [
    "CheckpointError",
    "ConditionalDensityModule",
    "Emulator",
    "EmulatorSpec",
    "FidelityLevel",
    "Level",
    "PerturbedEmulator",
    "PerturbedLevel",
    "ReducedSimulatorLevel",
    "SimulatorRef",
    "StoreDataModule",
    "check_compatible",
    "check_ladder",
    "level_simulator",
    "parse_level",
    "train_emulator",
]
