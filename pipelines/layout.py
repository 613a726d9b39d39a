"""Where every output of a study lives (the study folder of DESIGN.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["CEILING", "StudyLayout", "LevelLayout", "level_name"]

CEILING = "ceiling"


def level_name(level: object | None) -> str:
    """The folder name of a ladder level, or of the ceiling (``None``)."""
    return CEILING if level is None else level.name  # type: ignore[attr-defined]


@dataclass(frozen=True)
class LevelLayout:
    """Outputs of one fidelity level (or of the ceiling, which has no emulator).

    The stand-in's outputs live in ``root``; posteriors, scores and the manifest of their stages
    in :attr:`method_root`: ``root`` itself for NPE (or ``method=None``), ``root/<method>`` for
    other inference methods.
    """

    root: Path
    method: str | None = None

    @property
    def method_root(self) -> Path:
        """Where this method's posteriors and scores live."""
        return self.root if self.method in (None, "npe") else self.root / self.method

    @property
    def emulator(self) -> Path:
        return self.root / "emulator.pt"

    @property
    def emulated(self) -> Path:
        return self.root / "emulated.zarr"

    @property
    def emulator_error(self) -> Path:
        """Measured error of the level's stand-in against held-out simulator pairs."""
        return self.root / "emulator_error.zarr"

    @property
    def posterior(self) -> Path:
        return self.method_root / "posterior.pt"

    @property
    def scores(self) -> Path:
        return self.method_root / "scores.zarr"

    @property
    def degree_scores(self) -> Path:
        """Scores at every degree of the study's misspecification sweep."""
        return self.method_root / "degrees.zarr"

    def replicate_posterior(self, index: int) -> Path:
        """Posterior of training replicate ``index`` (replicate 0 is ``posterior.pt``)."""
        return self.posterior if index == 0 else self.method_root / f"posterior-{index}.pt"

    @property
    def manifest(self) -> Path:
        return self.method_root / "manifest.json"


@dataclass(frozen=True)
class StudyLayout:
    """The study folder::

    study.yaml                 resolved config (what actually ran)
    simulations/{train,test,observations,reference}.zarr
    levels/<name>/             emulator.pt, emulated.zarr, emulator_error.zarr, posterior.pt,
                               scores.zarr (NPE); <method>/posterior.pt, scores.zarr (others)
    ceiling/                   posterior.pt and scores.zarr trained on true-simulator data
    reference/                 draws.zarr (MCMC on the simulator's likelihood, or the user's
                               samples), or the simulation reference's members, members.json
                               (their checks) and self_agreement.zarr
    report/                    index.html, scores.csv, figures/, trend.zarr
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

    def level(self, name: str, method: str | None = None) -> LevelLayout:
        """A level's folder; a unit name ``<level>/<method>`` picks that method's outputs."""
        if "/" in name:
            name, method = name.split("/", 1)
        if name == CEILING:
            return LevelLayout(self.root / CEILING, method)
        return LevelLayout(self.root / "levels" / name, method)

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def reference(self) -> Path:
        """Reference ensemble members (simulators without an exact posterior)."""
        return self.root / "reference"

    def reference_member(self, index: int, attempt: int = 0) -> Path:
        """One member of the simulation reference (``attempt`` 1: its retraining)."""
        return self.reference / (f"member-{index}.pt" if not attempt else f"member-{index}-r.pt")

    @property
    def reference_checks(self) -> Path:
        """The simulation reference's kept members and every member's training check."""
        return self.reference / "members.json"

    @property
    def reference_member_costs(self) -> Path:
        """Core seconds each simulation-reference member's training spent, by file name."""
        return self.reference / "member_costs.json"

    @property
    def reference_draws(self) -> Path:
        """Reference draws at the observations, with their MCMC diagnostics (likelihood)."""
        return self.reference / "draws.zarr"

    @property
    def reference_truth_check(self) -> Path:
        """C2ST of a non-exact reference against the exact posterior, where one exists."""
        return self.reference / "truth_check.zarr"

    @property
    def reference_agreement(self) -> Path:
        """Self-agreement C2ST of the reference ensemble (its noise floor)."""
        return self.reference / "self_agreement.zarr"

    def trend_of(self, method: str) -> Path:
        """:attr:`trend` for NPE, ``trend-<method>.zarr`` for other methods."""
        return self.trend if method == "npe" else self.report / f"trend-{method}.zarr"

    @property
    def trend(self) -> Path:
        """Each posterior score against measured emulator error, across levels.

        Derived from every level's scores (rewritten whenever a level is rescored), so it lives
        with the other study-wide derived outputs in ``report/``.
        """
        return self.report / "trend.zarr"
