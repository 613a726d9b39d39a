"""Config-time checks of a fidelity ladder: can each level stand in for the study's simulator?

Kept apart from :mod:`emulators.levels` so that loading a config (every ``emustudy`` command)
does not import Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emulators.fidelity import AnyLevel, FinetuneLevel, PerturbedLevel, ReducedSimulatorLevel
from simulators.base import Simulator
from simulators.errors import ConfigError
from simulators.registry import make_simulator

__all__ = ["check_compatible", "check_ladder", "per_output"]


def per_output(
    value: float | tuple[float, ...], field: str, level: str, outputs: tuple[str, ...]
) -> np.ndarray:
    """A perturbed level's ``bias`` or ``extra_noise_std`` as one value per output, shape
    ``(n_outputs,)``; a scalar is repeated, a list must have one value per output."""
    if isinstance(value, tuple):
        if len(value) != len(outputs):
            raise ConfigError(
                f"perturbed level {level!r}: {field} lists {len(value)} values but the simulator "
                f"has {len(outputs)} outputs {list(outputs)}; give one value per output or a "
                "single number for all"
            )
        return np.asarray(value, dtype=np.float64)
    return np.full(len(outputs), float(value))


def check_compatible(reference: Simulator, candidate: Simulator, what: str) -> None:
    """Refuse a stand-in whose parameter or output names differ from the reference simulator.

    Raises
    ------
    ConfigError
        Naming both lists of names.
    """
    for kind, ours, theirs in (
        ("parameter", reference.prior.names, candidate.prior.names),
        ("output", reference.output_names, candidate.output_names),
    ):
        if tuple(ours) != tuple(theirs):
            raise ConfigError(
                f"{what} has {kind} names {list(theirs)} but the study's simulator "
                f"{reference.name!r} has {list(ours)}; a stand-in must have the same {kind}s "
                "in the same order (pick other settings or another simulator)"
            )


def check_ladder(ladder: Sequence[AnyLevel], simulator: Simulator) -> None:
    """Check that every level can stand in for ``simulator``.

    Reduced simulators must be registered and share parameter and output names; a perturbed
    level's ``base`` must be an emulator level of the ladder, and per-output lists must have one
    value per output.

    Raises
    ------
    ConfigError
    """
    kinds = {level.name: level.kind for level in ladder}
    for level in ladder:
        if isinstance(level, ReducedSimulatorLevel):
            reduced = make_simulator(level.simulator.name, **level.simulator.settings)
            check_compatible(simulator, reduced, f"reduced_simulator level {level.name!r}")
        elif isinstance(level, PerturbedLevel):
            emulators = [name for name, kind in kinds.items() if kind == "emulator"]
            if kinds.get(level.base) != "emulator":
                raise ConfigError(
                    f"perturbed level {level.name!r} has base {level.base!r}, which is not an "
                    f"emulator level of the ladder; use one of {emulators}"
                )
            per_output(level.bias, "bias", level.name, simulator.output_names)
        elif isinstance(level, FinetuneLevel) and kinds.get(level.base) in (None, "finetune"):
            bases = [name for name, kind in kinds.items() if kind != "finetune"]
            raise ConfigError(
                f"finetune level {level.name!r} has base {level.base!r}, which is not a level "
                f"of the ladder that trains its own posterior; use one of {bases}"
            )
            per_output(level.extra_noise_std, "extra_noise_std", level.name, simulator.output_names)
