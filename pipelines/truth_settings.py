"""What a study takes as the truth: its reference posterior and, optionally, observed data.

``reference:`` chooses how the reference posterior every score is judged against is made:

* ``exact``: the simulator's own posterior sampler (``ExactPosterior``);
* ``likelihood``: checked MCMC on the simulator's own ``log_likelihood`` (``Likelihood``);
* ``simulation``: a checked NPE ensemble trained on a true-simulator campaign of its **own**
  (``budget`` runs, by default 10 x ``budgets.train``), never on the store it judges;
* ``samples``: draws per observation that the user brings (``samples: file``), for
  observations from a file;
* ``auto`` (default): the first of exact, likelihood, simulation the simulator allows.

``observations:`` (top level) is either a count, like ``budgets.observations``, or a file of
observed outputs (CSV, NPY, NetCDF or Zarr; see :mod:`inference.observation_files`).
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from inference.observation_files import ObservedData, read_observations, read_reference_samples
from inference.settings import NPESettings
from inference.simulation_reference import BUDGET_FACTOR
from simulators.base import ExactPosterior, Likelihood, Simulator
from simulators.errors import ConfigError

__all__ = [
    "ObservationFile",
    "ReferenceKind",
    "ReferenceSettings",
    "check_reference_samples",
    "file_digest",
    "read_observation_file",
    "resolve_reference",
]

ReferenceKind = Literal["exact", "likelihood", "simulation", "samples"]


class ReferenceSettings(BaseModel):
    """How the reference posterior is made, and when its error makes the report warn."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["auto", "exact", "likelihood", "simulation", "samples"] = Field(
        "auto", description="auto: exact, else likelihood, else simulation"
    )
    budget: int | None = Field(
        None,
        gt=0,
        description=f"simulation: runs of the reference's own campaign; default "
        f"{BUDGET_FACTOR} x budgets.train",
    )
    members: int = Field(3, ge=2, description="simulation: ensemble members (3+ are checked)")
    network: NPESettings = Field(
        default_factory=NPESettings, description="simulation: every member's NPE (NSF default)"
    )
    tolerance: float = Field(
        3.0, gt=0, description="simulation: MADs above the median loss that flag a member"
    )
    samples: Path | None = Field(None, description="samples: file of draws per observation")
    trust_threshold: float = Field(
        0.6,
        gt=0.5,
        le=1.0,
        description="reference error (C2ST) above which the report warns that absolute "
        "scores are not trustworthy",
    )

    def resolved_budget(self, train: int) -> int:
        """Runs of the simulation reference's own campaign."""
        return self.budget if self.budget is not None else BUDGET_FACTOR * train


class ObservationFile(BaseModel):
    """Observed outputs from a file, optionally with the parameters that made them."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    file: Path

    @field_validator("file")
    @classmethod
    def _exists(cls, path: Path) -> Path:
        if not path.exists():
            raise ValueError(
                f"observation file {path} does not exist (resolved: {path.absolute()}); "
                "paths are relative to the folder you run emustudy in"
            )
        return path


def resolve_reference(settings: ReferenceSettings, simulator: Simulator) -> ReferenceKind:
    """The reference kind a study uses, checked against what the simulator provides.

    Raises
    ------
    ConfigError
        If the kind asks for something the simulator does not declare, or ``samples`` lacks
        its file.
    """
    kind = settings.kind
    if kind == "auto":
        if isinstance(simulator, ExactPosterior):
            return "exact"
        return "likelihood" if isinstance(simulator, Likelihood) else "simulation"
    if kind == "exact" and not isinstance(simulator, ExactPosterior):
        raise ConfigError(
            f"reference.kind: exact, but simulator {simulator.name!r} has no exact posterior; "
            "use kind: likelihood (if it declares log_likelihood), simulation or samples"
        )
    if kind == "likelihood" and not isinstance(simulator, Likelihood):
        raise ConfigError(
            f"reference.kind: likelihood, but simulator {simulator.name!r} declares no "
            "log_likelihood; use kind: simulation (or samples with a file of draws)"
        )
    if kind == "samples" and settings.samples is None:
        raise ConfigError(
            "reference.kind: samples needs `reference.samples: FILE` (NPY, NetCDF or Zarr of "
            "draws, (observation, draw, param))"
        )
    return kind


@lru_cache(maxsize=16)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    files = [Path(path)] if Path(path).is_file() else sorted(Path(path).rglob("*"))
    for file in files:
        if file.is_file():
            digest.update(str(file.relative_to(path) if file != Path(path) else "").encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def file_digest(path: Path) -> str:
    """A content hash of a file or folder (cached while its mtime and size are unchanged)."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).absolute()), stat.st_mtime_ns, stat.st_size)


def read_observation_file(source: ObservationFile, simulator: Simulator) -> ObservedData:
    """The file's observations, in the simulator's output order (errors name file and row).

    Read once per content of the file (cached by its digest).
    """
    return _read_cached(
        str(source.file), file_digest(source.file), simulator.output_names, simulator.prior.names
    )


@lru_cache(maxsize=8)
def _read_cached(
    path: str, _digest: str, outputs: tuple[str, ...], params: tuple[str, ...]
) -> ObservedData:
    return read_observations(path, outputs, params)


def check_reference_samples(settings: ReferenceSettings, simulator: Simulator, n_obs: int) -> Any:
    """Read a ``samples`` reference and check it has draws for each of ``n_obs`` observations.

    Returns
    -------
    draws : (n_obs, n_draws, p)
    """
    if settings.samples is None:
        raise ConfigError("reference.kind: samples needs `reference.samples: FILE`")
    draws = read_reference_samples(settings.samples, simulator.prior.names)
    if len(draws) != n_obs:
        raise ConfigError(
            f"{settings.samples}: holds draws for {len(draws)} observations but the study has "
            f"{n_obs}; give one block of draws per observation, in the observation file's order"
        )
    return draws
