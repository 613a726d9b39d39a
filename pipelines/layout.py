"""Where every output of a study lives (the study folder of DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CEILING", "StudyLayout", "LevelLayout"]

CEILING = "ceiling"


@dataclass(frozen=True)
class LevelLayout:
    """Outputs of one fidelity level (or of the ceiling, which has no emulator)."""

    root: Path

    @property
    def emulator(self) -> Path:
        return self.root / "emulator.pt"

    @property
    def emulated(self) -> Path:
        return self.root / "emulated.zarr"

    @property
    def posterior(self) -> Path:
        return self.root / "posterior.pt"

    @property
    def scores(self) -> Path:
        return self.root / "scores.zarr"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"


@dataclass(frozen=True)
class StudyLayout:
    """The study folder::

    study.yaml                 resolved config (what actually ran)
    simulations/{train,test,observations}.zarr
    levels/<name>/             emulator.pt, emulated.zarr, posterior.pt, scores.zarr
    ceiling/                   posterior.pt and scores.zarr trained on true-simulator data
    report/                    index.html, scores.csv, figures/
    """

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "study.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "simulations" / "manifest.json"

    def simulations(self, role: str) -> Path:
        return self.root / "simulations" / f"{role}.zarr"

    def level(self, name: str) -> LevelLayout:
        if name == CEILING:
            return LevelLayout(self.root / CEILING)
        return LevelLayout(self.root / "levels" / name)

    @property
    def report(self) -> Path:
        return self.root / "report"
