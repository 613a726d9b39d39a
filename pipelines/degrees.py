"""Misspecification as a study axis: observations at several degrees, every unit scored at each.

A study's ``misspecification:`` section names a *knob* and its *degrees*. The knob is either the
misspecification setting of a misspecified simulator (``dgp_variance`` of ``normal_location``;
its observations then come from the simulator's data-generating process, run by the campaign
engine like any other simulations, one store per degree) or a setting of the study's
observation model (``observation_model.scale`` or ``observation_model.fraction``: one store of
true-simulator outputs, perturbed at each degree). Every degree uses the same true parameters
``theta0`` and the same per-sample seeds, so the curves against the degree are not blurred by
fresh noise at every point.

Posteriors do not depend on the degree (they are trained on simulations); each unit's posteriors
are scored at every degree (:func:`inference.degree_scores.score_at_observations`) into
``degrees.zarr`` beside its ``scores.zarr``: dims ``degree x replicate x observation``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, field_validator

from inference.methods import get_method
from inference.observations import ObservationModel
from inference.seeds import child_seed
from simulators.base import Simulator
from simulators.errors import ConfigError
from simulators.misspecified import DGPSimulator, at_degree, require_knob
from simulators.registry import make_simulator

__all__ = [
    "OBSERVATION_KNOBS",
    "DegreeScoring",
    "MisspecificationSweep",
    "check_sweep",
    "degree_observations",
    "degree_roles",
    "degree_simulator",
    "score_degrees",
]

OBSERVATION_KNOBS = ("observation_model.scale", "observation_model.fraction")
"""Knobs that sweep the study's observation model rather than the simulator."""


class MisspecificationSweep(BaseModel):
    """The ``misspecification:`` section of a study config.

    Attributes
    ----------
    knob : str
        The misspecified simulator's knob (e.g. ``dgp_variance``), or ``observation_model.scale``
        / ``observation_model.fraction`` (the kind comes from ``scores.observation_model``).
    degrees : tuple of float
        Its values, each scored (at least 2; the well-specified value is worth including).
    observations : int
        Observations per degree, at parameters drawn from the prior (coverage of ``theta0`` is a
        share over them: 200 observations give a binomial standard error of at most 0.035).
    posterior_samples : int
        Posterior draws per observation.
    c2st_observations : int
        Observations (the first ones) at which the C2ST against the data-generating process's
        own posterior is taken, where the simulator knows it (about 1 s each per replicate).
    mcmc_observations : int
        Observations (the first ones) at which methods that run MCMC per observation (not
        amortised, e.g. RNPE: about 1 s per observation and degree) are scored.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    knob: str
    degrees: tuple[float, ...] = Field(min_length=2)
    observations: int = Field(200, ge=20)
    posterior_samples: int = Field(500, ge=50)
    c2st_observations: int = Field(5, ge=0)
    mcmc_observations: int = Field(50, ge=20)

    @field_validator("degrees")
    @classmethod
    def _distinct(cls, degrees: tuple[float, ...]) -> tuple[float, ...]:
        if len(set(degrees)) != len(degrees) or not all(np.isfinite(degrees)):
            raise ValueError(f"degrees must be distinct finite numbers, got {list(degrees)}")
        return degrees

    @property
    def on_simulator(self) -> bool:
        """Whether the knob is the simulator's (else the observation model's)."""
        return self.knob not in OBSERVATION_KNOBS


def check_sweep(
    sweep: MisspecificationSweep,
    simulator: Simulator,
    observation_model: ObservationModel,
    methods: tuple[str, ...],
) -> None:
    """Refuse a sweep that this study cannot run, naming the problem and the fix.

    Raises
    ------
    ConfigError
    """
    trained_on_observations = [m for m in methods if get_method(m).needs_observations]
    if trained_on_observations:
        raise ConfigError(
            f"misspecification.degrees with {trained_on_observations}: these methods train on "
            "the study's observations, so they would need one posterior per degree; run one "
            "study per degree for them, or sweep the other methods"
        )
    if not sweep.on_simulator:
        wanted = "contamination" if sweep.knob.endswith("fraction") else "noise or contamination"
        if observation_model.kind == "perfect" or (
            sweep.knob.endswith("fraction") and observation_model.kind != "contamination"
        ):
            raise ConfigError(
                f"misspecification.knob {sweep.knob!r} sweeps the observation model, but "
                f"scores.observation_model.kind is {observation_model.kind!r}; set it to "
                f"{wanted}"
            )
        for degree in sweep.degrees:
            _observation_model(observation_model, sweep.knob, degree)
        return
    require_knob(simulator)
    if sweep.knob != simulator.knob:  # type: ignore[attr-defined]
        raise ConfigError(
            f"misspecification.knob {sweep.knob!r} is not {simulator.name}'s knob; write "
            f"knob: {simulator.knob} (or one of {', '.join(OBSERVATION_KNOBS)})"  # type: ignore[attr-defined]
        )
    for degree in sweep.degrees:
        at_degree(simulator, degree)  # the simulator refuses impossible values


def _observation_model(base: ObservationModel, knob: str, degree: float) -> ObservationModel:
    field = knob.split(".", 1)[1]
    try:
        return ObservationModel(**{**base.model_dump(), field: degree})
    except ValueError as err:
        raise ConfigError(
            f"misspecification degree {degree:g} is not a valid {knob} ({err}); use values "
            "the observation model allows (scale >= 0, 0 <= fraction <= 1)"
        ) from err


def degree_roles(sweep: MisspecificationSweep) -> list[str]:
    """The simulation stores of a sweep: one per degree for a simulator knob, else one."""
    if sweep.on_simulator:
        return [f"misspecified-{i}" for i in range(len(sweep.degrees))]
    return ["misspecified"]


def degree_simulator(simulator: Simulator, sweep: MisspecificationSweep, role: str) -> Simulator:
    """What the campaign of ``role`` runs: the data-generating process at that degree, or the
    true simulator (whose outputs the observation model perturbs)."""
    if not sweep.on_simulator:
        return simulator
    index = int(role.rsplit("-", 1)[1])
    return DGPSimulator(at_degree(simulator, sweep.degrees[index]))


@dataclass(frozen=True)
class DegreeScoring:
    """What :func:`score_degrees` reads for one unit (sent to a Dask task).

    Attributes
    ----------
    sweep : MisspecificationSweep
    observation_model : ObservationModel
        The study's, whose knob an observation-model sweep sets.
    simulator : (name, settings JSON)
    stores : tuple of Path
        The sweep's observation stores (:func:`degree_roles`).
    test_store : Path
        Held-out true-simulator pairs (output scales of the observation model).
    posteriors : tuple of Path
        The unit's replicate posteriors.
    out : Path
        Where ``degrees.zarr`` goes.
    seed, observation_seed : int
    """

    sweep: MisspecificationSweep
    observation_model: ObservationModel
    simulator: tuple[str, str]
    stores: tuple[Path, ...]
    test_store: Path
    posteriors: tuple[Path, ...]
    out: Path
    seed: int
    observation_seed: int


def degree_observations(job: DegreeScoring) -> tuple[np.ndarray, list[np.ndarray]]:
    """True parameters ``(N, p)`` and the observations ``(N, d)`` at every degree.

    Rows whose simulation failed at any degree are left out of all, so every degree is scored
    at the same ``theta0``.
    """
    from simulators.store import open_store

    def pairs(store: Path) -> tuple[np.ndarray, np.ndarray]:
        ds = open_store(store)
        return np.asarray(ds["theta"].values, np.float64), np.asarray(ds["x"].values, np.float64)

    if job.sweep.on_simulator:
        stored = [pairs(store) for store in job.stores]
        theta, ys = stored[0][0], [y for _, y in stored]
    else:
        theta, x = pairs(job.stores[0])
        scale = np.nanstd(pairs(job.test_store)[1], axis=0)
        finite = np.isfinite(x).all(axis=1)
        ys = []
        for degree in job.sweep.degrees:
            model = _observation_model(job.observation_model, job.sweep.knob, degree)
            y = np.full_like(x, np.nan)
            y[finite] = model.apply(x[finite], scale, job.observation_seed)
            ys.append(y)
    kept = np.isfinite(theta).all(axis=1) & np.all([np.isfinite(y).all(axis=1) for y in ys], 0)
    if not kept.any():
        raise ConfigError(
            f"no observation of the misspecification sweep simulated cleanly at every degree "
            f"({', '.join(str(s) for s in job.stores)}); check the failures in `emustudy status`"
        )
    return theta[kept], [y[kept] for y in ys]


def _truth(simulator: Simulator, sweep: MisspecificationSweep, index: int) -> Any:
    """Draws of the data-generating process's own posterior at degree ``index``, or None."""
    if not sweep.on_simulator:
        return None
    model: Any = at_degree(simulator, sweep.degrees[index])
    return lambda y, n, seed: model.sample_dgp_posterior(y, n, np.random.default_rng(seed))


def score_degrees(job: DegreeScoring, context: Any = None) -> None:
    """Score every replicate posterior of one unit at every degree into ``job.out``.

    ``context``: the unit's :class:`~inference.methods.MethodContext` (its likelihood, for
    methods that sample one).
    """
    from inference.degree_scores import score_at_observations
    from inference.methods import load_posterior
    from inference.scores import SCORES_FORMAT, save_scores

    name, settings = job.simulator
    simulator = make_simulator(name, **json.loads(settings))
    posteriors = [load_posterior(path, simulator.prior, context=context) for path in job.posteriors]
    theta0, ys = degree_observations(job)
    if not get_method(posteriors[0].method).amortised:
        kept = job.sweep.mcmc_observations
        theta0, ys = theta0[:kept], [y[:kept] for y in ys]
    per_degree = []
    for index, y in enumerate(ys):
        truth = _truth(simulator, job.sweep, index)
        per_degree.append(
            xr.concat(
                [
                    score_at_observations(
                        posterior,
                        theta0,
                        y,
                        n_draws=job.sweep.posterior_samples,
                        seed=child_seed(job.seed, index, replicate),
                        truth=truth,
                        n_c2st=job.sweep.c2st_observations,
                    )
                    for replicate, posterior in enumerate(posteriors)
                ],
                dim="replicate",
            )
        )
    ds = xr.concat(per_degree, dim="degree").assign_coords(degree=list(job.sweep.degrees))
    ds.attrs.update(
        format=SCORES_FORMAT,
        kind="scores per degree of misspecification",
        knob=job.sweep.knob,
        method=posteriors[0].method,
    )
    save_scores(ds, job.out)
