"""Turn any fidelity level into a :class:`Simulator`: trained emulator, reduced or perturbed.

* ``emulator`` levels load their trained :class:`~emulators.emulator.Emulator`;
* ``reduced_simulator`` levels build another registered simulator;
* ``perturbed`` levels wrap the emulator of their ``base`` level in a :class:`PerturbedEmulator`,
  which adds a declared bias and extra Gaussian noise drawn from the per-sample seeds.

A study keeps, in each level's ``emulator.pt``, either a trained emulator or a small stand-in
record (:func:`write_stand_in`), and :func:`load_stand_in` rebuilds any level from that file.

:func:`~emulators.ladder.check_ladder` (re-exported here) refuses, at config load, a ladder whose
levels cannot stand in for the study's simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, final

import numpy as np
import torch

from emulators.emulator import CheckpointError, Emulator
from emulators.fidelity import (
    AnyLevel,
    FidelityLevel,
    PerturbedLevel,
    ReducedSimulatorLevel,
    parse_level,
)
from emulators.ladder import check_compatible, check_ladder, per_output
from emulators.noise import seeded_normal
from emulators.train import save_atomically, verify_torch_file
from simulators.base import Simulator
from simulators.errors import ConfigError
from simulators.registry import make_simulator

__all__ = [
    "STAND_IN_FORMAT",
    "AnyLevel",
    "PerturbedEmulator",
    "check_compatible",
    "check_ladder",
    "level_simulator",
    "load_stand_in",
    "write_stand_in",
]

STAND_IN_FORMAT = "emustudy-stand-in/1"
_NOISE_STREAM = 0x9E5D  # second entropy word: extra noise independent of the base's own draws


@final
class PerturbedEmulator(Simulator):
    """A simulator (usually an emulator) plus a declared bias and extra Gaussian noise in ``x``.

    ``x = base(theta, seed) + bias + extra_noise_std * eps`` with ``eps`` from
    :func:`~emulators.noise.seeded_normal` on its own stream: row i depends on ``theta[i]`` and
    ``seeds[i]`` alone, independently of the batch.

    Parameters
    ----------
    base : Simulator
    level : PerturbedLevel
        Supplies the name, ``bias`` and ``extra_noise_std`` (scalars or one value per output).

    Raises
    ------
    ConfigError
        If a per-output list does not have one value per output of ``base``.
    """

    def __init__(self, base: Simulator, level: PerturbedLevel) -> None:
        self.base, self.level = base, level
        self.name = f"perturbed[{level.name}]"
        self.prior, self.output_names = base.prior, tuple(base.output_names)
        self.bias = per_output(level.bias, "bias", level.name, self.output_names)
        self.extra_noise_std = per_output(
            level.extra_noise_std, "extra_noise_std", level.name, self.output_names
        )

    @property
    def settings(self) -> dict[str, Any]:
        """The level, the base simulator's name and settings, bias and extra noise."""
        return {
            "level": self.level.name,
            "base": self.base.name,
            "base_settings": self.base.settings,
            "bias": self.bias.tolist(),
            "extra_noise_std": self.extra_noise_std.tolist(),
        }

    @property
    def has_density(self) -> bool:
        """Whether :meth:`log_prob` exists: a base with a density and no extra noise."""
        return hasattr(self.base, "log_prob") and not self.extra_noise_std.any()

    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Base outputs shifted by ``bias`` plus extra noise.

        Parameters
        ----------
        theta : (batch, n_params)
        seeds : (batch,) uint64

        Returns
        -------
        x : (batch, n_outputs) float64
        """
        x = np.asarray(self.base.simulate(theta, seeds), dtype=np.float64) + self.bias
        if self.extra_noise_std.any():
            eps = seeded_normal(seeds, len(self.bias), stream=_NOISE_STREAM)
            x = x + self.extra_noise_std * eps
        return x

    def log_prob(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """``log q(x - bias | theta)`` of the base; NaN where the level adds noise.

        With extra noise the density is a convolution with no closed form, so every row is NaN
        (check :attr:`has_density`); sample-based errors (C2ST, MMD) still measure the level.

        Returns
        -------
        log_prob : (batch,)
        """
        if not self.has_density:
            return np.full(len(np.asarray(theta)), np.nan)
        return self.base.log_prob(np.asarray(x, dtype=np.float64) - self.bias, theta)

    def __repr__(self) -> str:
        return f"PerturbedEmulator(level={self.level.name!r}, base={self.base!r})"


def level_simulator(level: AnyLevel, emulator_path: Callable[[str], Path]) -> Simulator:
    """The :class:`Simulator` that realises ``level``.

    Parameters
    ----------
    level : FidelityLevel, ReducedSimulatorLevel or PerturbedLevel
    emulator_path : callable
        Maps an emulator level's name to its trained checkpoint (``emulator.pt``).

    Returns
    -------
    simulator : Emulator, PerturbedEmulator or a registered Simulator
    """
    if isinstance(level, FidelityLevel):
        return Emulator.load(emulator_path(level.name))
    if isinstance(level, ReducedSimulatorLevel):
        return make_simulator(level.simulator.name, **level.simulator.settings)
    return PerturbedEmulator(Emulator.load(emulator_path(level.base)), level)


def write_stand_in(level: AnyLevel, path: Path, *, base_checkpoint: Path | None = None) -> Path:
    """Record a reduced or perturbed level as a safe file, so :func:`load_stand_in` rebuilds it.

    The file (format ``emustudy-stand-in/1``) holds plain types only and is written atomically;
    it takes the place a trained level's ``emulator.pt`` has.

    Parameters
    ----------
    level : ReducedSimulatorLevel or PerturbedLevel
    path : Path
    base_checkpoint : Path, optional
        The trained checkpoint of a perturbed level's base (required for those).

    Raises
    ------
    ConfigError
        For an emulator level (train it instead) or a perturbed level without its base.
    """
    if isinstance(level, FidelityLevel):
        raise ConfigError(f"level {level.name!r} is an emulator level: train it (train_emulator)")
    if isinstance(level, PerturbedLevel) and base_checkpoint is None:
        raise ConfigError(f"perturbed level {level.name!r} needs the checkpoint of its base")
    record = {
        "format": STAND_IN_FORMAT,
        "spec": level.model_dump(mode="json"),
        "base_checkpoint": None
        if base_checkpoint is None
        else str(Path(base_checkpoint).resolve()),
    }
    return save_atomically(record, Path(path))


def load_stand_in(path: Path) -> Simulator:
    """Load whatever realises a level from its ``emulator.pt``: any level kind.

    A trained emulator checkpoint gives an :class:`Emulator`; a stand-in record of
    :func:`write_stand_in` gives the reduced simulator or the :class:`PerturbedEmulator`.
    Files are read with ``torch.load(weights_only=True)``.

    Raises
    ------
    CheckpointError
        If the file is missing, unsafe or of an unknown format.
    """
    path = Path(path)
    try:
        verify_torch_file(path)
        record = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:
        raise CheckpointError(
            f"{path} is not a safe, readable level checkpoint ({err}); run `emustudy "
            "train-emulator` for this level again"
        ) from err
    if not isinstance(record, dict) or record.get("format") != STAND_IN_FORMAT:
        return Emulator.load(path)
    try:
        level = parse_level(record["spec"])
        base = record["base_checkpoint"]
    except (KeyError, TypeError, ValueError) as err:  # pydantic's ValidationError included
        raise CheckpointError(
            f"{path} is a stand-in record whose level does not parse ({type(err).__name__}: "
            f"{str(err)[:300]}); it is corrupt or was edited. Run `emustudy train-emulator` "
            "for this level again to rewrite it"
        ) from err
    if isinstance(level, ReducedSimulatorLevel):
        return make_simulator(level.simulator.name, **level.simulator.settings)
    if isinstance(level, PerturbedLevel):
        return PerturbedEmulator(Emulator.load(Path(base)), level)
    raise CheckpointError(f"{path} records an emulator level without weights; retrain it")
