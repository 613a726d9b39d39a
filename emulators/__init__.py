"""Emulators: cheaper stand-ins for a costly simulator, one per fidelity level."""

from emulators.data import StoreDataModule
from emulators.distances import c2st_accuracy, mmd_squared
from emulators.emulator import CheckpointError, Emulator
from emulators.error import load_emulator_error, measure_emulator_error, save_emulator_error
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
    "c2st_accuracy",
    "check_compatible",
    "check_ladder",
    "level_simulator",
    "load_emulator_error",
    "measure_emulator_error",
    "mmd_squared",
    "parse_level",
    "save_emulator_error",
    "train_emulator",
]
