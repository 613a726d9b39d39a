"""What a study infers and scores: one unit per (level, inference method) that applies.

Every method of ``inference.methods`` runs on every level, except where it cannot:
``emulator_likelihood`` samples the level's own density ``q(x | theta)``, which emulator levels
have, perturbed levels only without extra noise, and reduced simulators not; at the ceiling it
samples the true simulator's ``log_likelihood`` where the simulator declares one. What is left
out, and why, is known when the config loads (:func:`skipped_units`), so ``emustudy validate``
says it before anything runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from emulators.fidelity import AnyLevel, FidelityLevel, PerturbedLevel
from inference.likelihood_mcmc import FunctionLikelihood
from inference.methods import MethodContext, get_method
from pipelines.config import StudyConfig
from pipelines.layout import StudyLayout, level_name
from simulators.base import Simulator
from simulators.registry import make_simulator

__all__ = [
    "LikelihoodSource",
    "Unit",
    "likelihood_source",
    "skipped_units",
    "stage_seed",
    "study_simulator",
    "units",
]


@dataclass(frozen=True)
class Unit:
    """One level (``None``: the ceiling) with one inference method."""

    level: AnyLevel | None
    method: str

    @property
    def name(self) -> str:
        """``<level>`` for NPE (its outputs live in the level folder), else ``<level>/<method>``."""
        return (
            level_name(self.level)
            if self.method == "npe"
            else f"{level_name(self.level)}/{self.method}"
        )


@cache
def _simulator(name: str, settings: str) -> Simulator:
    return make_simulator(name, **json.loads(settings))


def study_simulator(config: StudyConfig) -> Simulator:
    """The study's true simulator, built once per process."""
    return _simulator(config.simulator.name, json.dumps(config.simulator.settings, sort_keys=True))


def _why_not(config: StudyConfig, level: AnyLevel | None, method: str) -> str:
    """Empty when ``method`` applies to ``level``, else the reason it is left out."""
    if getattr(level, "kind", None) == "finetune" and method != "npe":
        return "a finetune level fine-tunes the NPE posterior of its base"
    if not get_method(method).needs_likelihood:
        return ""
    if level is None:
        if hasattr(study_simulator(config), "log_likelihood"):
            return ""
        return f"simulator {config.simulator.name!r} declares no log_likelihood"
    if isinstance(level, FidelityLevel):
        return ""
    if isinstance(level, PerturbedLevel):
        noisy = np.any(np.asarray(level.extra_noise_std, dtype=float) != 0)
        return "its extra noise has no density" if noisy else ""
    return "a reduced simulator has no density q(x | theta)"


def units(config: StudyConfig, levels: list[AnyLevel | None]) -> list[Unit]:
    """Every (level, method) of ``levels`` that applies, levels first, methods in config order."""
    return [
        Unit(level, method)
        for level in levels
        for method in config.inference.methods
        if not _why_not(config, level, method)
    ]


def skipped_units(config: StudyConfig) -> list[tuple[str, str, str]]:
    """``(level, method, reason)`` of every pair that is left out."""
    return [
        (level_name(level), method, reason)
        for level in [*config.ladder, None]
        for method in config.inference.methods
        if (reason := _why_not(config, level, method))
    ]


@dataclass(frozen=True)
class LikelihoodSource:
    """Where a unit's likelihood comes from, small enough to send to a Dask task.

    Attributes
    ----------
    simulator : (name, settings JSON), optional
        The true simulator, whose ``log_likelihood`` is sampled (the ceiling).
    stand_in : Path, optional
        A level's ``emulator.pt``, whose ``log_prob`` is sampled.
    identity : str
        Digest of what made the likelihood (part of the posterior's fingerprint).
    """

    simulator: tuple[str, str] | None = None
    stand_in: Path | None = None
    identity: str = ""

    def context(self) -> MethodContext:
        """The :class:`~inference.methods.MethodContext` holding the likelihood (on a worker)."""
        if self.simulator is not None:
            simulator: Any = _simulator(*self.simulator)
            return MethodContext(
                likelihood=FunctionLikelihood(
                    f"simulator:{simulator.name}", simulator.log_likelihood
                ),
                likelihood_id=self.identity,
            )
        if self.stand_in is not None:
            from emulators.levels import load_stand_in  # Lightning, only where a level is run

            stand_in: Any = load_stand_in(self.stand_in)
            return MethodContext(
                likelihood=FunctionLikelihood(
                    f"stand-in:{self.stand_in.parent.name}",
                    lambda theta, x: stand_in.log_prob(x, theta),
                ),
                likelihood_id=self.identity,
            )
        return MethodContext()


def likelihood_source(
    config: StudyConfig, layout: StudyLayout, unit: Unit, identity: str
) -> LikelihoodSource:
    """The likelihood ``unit``'s method samples (an empty source when it samples none)."""
    if not get_method(unit.method).needs_likelihood:
        return LikelihoodSource()
    if unit.level is None:
        spec = (config.simulator.name, json.dumps(config.simulator.settings, sort_keys=True))
        return LikelihoodSource(simulator=spec, identity=identity)
    return LikelihoodSource(stand_in=layout.level(unit.level.name).emulator, identity=identity)


def stage_seed(seed: int, *labels: str) -> int:
    """A seed for one stage and level that does not change when other levels are added."""
    text = "/".join([str(seed), *labels])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF
