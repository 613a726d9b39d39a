"""The work behind the ``infer`` and ``score`` stages, run on Dask workers.

* :func:`train_replicates`: one unit's posteriors (a level with one inference method), one per
  training seed.
* :func:`train_reference_member`: one member of the simulation reference (trained on its own
  campaign), :func:`save_reference_checks` what its training check kept, and
  :func:`save_reference_agreement` its noise floor; :func:`save_sample_reference` the user's
  reference draws.
* :func:`observations`: the study's observations as scoring sees them (scoring a unit itself
  is :mod:`pipelines.level_scoring`, as tasks :mod:`pipelines.score_graph`).
* :func:`save_trend`: each score against the measured emulator error, across levels.

Tasks receive the pieces of the config they read (settings, paths, seeds), not the whole
:class:`~pipelines.config.StudyConfig`.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from inference.emulator_error import load_emulator_error
from inference.methods import load_posterior
from inference.observation_files import read_observations
from inference.observations import Observations, study_observations
from inference.reference import ExactReference, Reference
from inference.score_table import trend_scores
from inference.scores import (
    SCORES_FORMAT,
    load_scores,
    save_scores,
)
from inference.seeds import child_seed
from inference.settings import MethodSettings, NPESettings
from inference.simulation_reference import MemberCheck, SimulationReference, record_member
from inference.trend import score_trends
from pipelines.config import ScoreSettings, StudyConfig
from pipelines.layout import StudyLayout
from pipelines.units import LikelihoodSource, stage_seed, study_simulator
from simulators.base import ExactPosterior, Simulator
from simulators.errors import ConfigError
from simulators.prior import Prior
from simulators.store import load_pairs

__all__ = [
    "observations",
    "config_observations",
    "load_simulation_reference",
    "reference_for",
    "save_reference_agreement",
    "save_reference_checks",
    "save_reference_truth_check",
    "save_sample_reference",
    "save_trend",
    "train_reference_member",
    "train_replicates",
]


def train_replicates(
    method: str,
    settings: MethodSettings,
    prior: Prior,
    store: Path,
    limit: int | None,
    outs: list[Path],
    seed: int,
    likelihood: LikelihoodSource,
    x_obs: np.ndarray | None = None,
) -> None:
    """Train one posterior per path in ``outs`` on the valid pairs of ``store``.

    ``x_obs`` ``(n_obs, d)``: the study's observations, for methods that train on them.

    A killed run called again keeps the posteriors it finished and resumes the one it was
    training (:func:`~inference.methods.train_posterior_to`).
    """
    from inference.methods import train_posterior_to  # sbi's trainers: only where they run

    theta, x, _ = load_pairs(store, limit=limit)
    context = dataclasses.replace(likelihood.context(), x_obs=x_obs)
    for index, out in enumerate(outs):
        train_posterior_to(
            out, method, theta, x, prior, settings, seed=child_seed(seed, index), context=context
        )


def train_reference_member(
    settings: NPESettings,
    prior: Prior,
    store: Path,
    out: Path,
    seed: int,
    member: int,
    attempt: int,
) -> tuple[MemberCheck, bool]:
    """Train one run of one simulation-reference member on the reference's own campaign
    (resumable; a finished run with these inputs is kept).

    Returns
    -------
    check : MemberCheck
        Its check record.
    trained : bool
        False when a finished run with these inputs was kept and nothing was trained.
    """
    from inference.methods import train_posterior_to

    theta, x, _ = load_pairs(store)
    method_settings = MethodSettings(**settings.model_dump())
    with warnings.catch_warnings():  # an unconverged member is reported in its check record
        warnings.filterwarnings("ignore", message=".*max_num_epochs.*", category=UserWarning)
        trained = train_posterior_to(out, "npe", theta, x, prior, method_settings, seed=seed)
    posterior = load_posterior(out, prior)
    return record_member(member, attempt, seed, posterior), trained  # type: ignore[arg-type]


def save_reference_checks(
    path: Path, kept: list[Path], checks: list[MemberCheck], n_pairs: int, seconds: float
) -> None:
    """Write which member files the simulation reference keeps and every run's check."""
    record = {
        "kept": [p.name for p in kept],
        "checks": [dataclasses.asdict(check) for check in checks],
        "n_pairs": int(n_pairs),
        "seconds": float(seconds),
    }
    path.write_text(json.dumps(record, indent=1))


def load_simulation_reference(layout: StudyLayout, prior: Prior) -> SimulationReference:
    """The simulation reference the reference stage kept (``reference/members.json``)."""
    try:
        record = json.loads(layout.reference_checks.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"cannot read the simulation reference's record {layout.reference_checks} ({err}); "
            "rerun `emustudy infer` (or `emustudy run`) to train it"
        ) from err
    members = [load_posterior(layout.reference / name, prior) for name in record["kept"]]
    checks = [MemberCheck(**check) for check in record["checks"]]
    return SimulationReference(
        members,  # type: ignore[arg-type]
        checks,
        n_pairs=record["n_pairs"],
        seconds=record["seconds"],
    )


class StoredReference:
    """Reference draws computed once by the reference stage (``reference/draws.zarr``)."""

    def __init__(self, path: Path) -> None:
        self.draws = load_scores(path)
        self.kind = str(self.draws.attrs["kind"])

    def sample(self, x_obs: np.ndarray, n: int, seed: int) -> np.ndarray:
        """The stored draws ``(n_obs, n, p)``; refuses other observations or more draws."""
        stored = self.draws["x_obs"].values
        if stored.shape != np.shape(x_obs) or not np.allclose(stored, x_obs):
            raise ConfigError(
                "the stored reference draws were made at other observations; rerun "
                "`emustudy infer` to redraw them"
            )
        draws = self.draws["theta"].values
        if draws.shape[1] < n:
            raise ConfigError(f"{draws.shape[1]} stored reference draws, {n} asked for")
        return draws[:, :n]


def reference_for(simulator: Simulator, layout: StudyLayout, kind: str) -> Reference:
    """The study's reference posterior of ``kind`` (:func:`pipelines.config.StudyConfig.
    reference_kind`): the exact posterior; draws the reference stage stored (MCMC on the
    likelihood, or the user's samples); or the simulation reference's kept members."""
    if kind == "exact":
        return ExactReference(simulator)  # type: ignore[arg-type]
    if kind in ("likelihood", "samples"):
        return StoredReference(layout.reference_draws)
    return load_simulation_reference(layout, simulator.prior)


def observations(
    settings: ScoreSettings,
    layout: StudyLayout,
    seed: int,
    file: Path | None = None,
    simulator: Simulator | None = None,
) -> Observations:
    """The finite observations, passed through the study's observation model (``.x``), and
    how many were dropped for non-finite outputs (``.n_non_finite``).

    From the observation store, or from ``file`` (observed data; ``simulator`` names its
    columns), where the config gives one.
    """
    if file is None:
        return study_observations(
            layout.simulations("observations"),
            layout.simulations("test"),
            settings.observation_model,
            seed,
        )
    if simulator is None:
        raise ConfigError("reading an observation file needs the simulator (its output names)")
    observed = read_observations(file, simulator.output_names, simulator.prior.names)
    _, x_test, _ = load_pairs(layout.simulations("test"))
    return Observations(
        x=settings.observation_model.apply(observed.x, x_test.std(axis=0), seed),
        source=str(file),
        n_non_finite=0,
        model=settings.observation_model,
    )


def config_observations(config: StudyConfig, layout: StudyLayout) -> Observations:
    """:func:`observations` as ``config`` makes them (the observation-model seed included)."""
    return observations(
        config.scores,
        layout,
        stage_seed(config.seed, "observation-model"),
        None if config.observations is None else config.observations.file,
        study_simulator(config),
    )


def save_likelihood_reference(config: StudyConfig, layout: StudyLayout, seed: int) -> None:
    """Checked MCMC draws on the simulator's own likelihood at every observation, with their
    R-hat and effective sample size, into ``reference/draws.zarr`` (refused runs raise)."""
    from inference.likelihood_reference import LikelihoodReference

    simulator = study_simulator(config)
    x_obs = config_observations(config, layout).x
    reference = LikelihoodReference(simulator)
    draws = reference.sample(x_obs, config.scores.posterior_samples, seed)
    rhat = np.stack([d.rhat for d in reference.diagnostics])
    ess = np.stack([d.ess for d in reference.diagnostics])
    ds = xr.Dataset(
        {
            "theta": (("observation", "draw", "param"), draws),
            "x_obs": (("observation", "output"), x_obs),
            "rhat": (("observation", "param"), rhat),
            "ess": (("observation", "param"), ess),
        },
        coords={"param": np.array(list(simulator.prior.names), dtype=object)},
        attrs={"format": SCORES_FORMAT, "kind": "likelihood", "seed": int(seed)},
    )
    save_scores(ds, layout.reference_draws)


def save_sample_reference(config: StudyConfig, layout: StudyLayout) -> None:
    """The user's reference draws (``reference.samples``) into ``reference/draws.zarr``, with
    the observations they belong to (refused when they do not fit the study)."""
    from pipelines.truth_settings import check_reference_samples

    simulator = study_simulator(config)
    x_obs = config_observations(config, layout).x
    draws = check_reference_samples(config.reference, simulator, len(x_obs))
    if draws.shape[1] < config.scores.posterior_samples:
        raise ConfigError(
            f"{config.reference.samples}: {draws.shape[1]} draws per observation, but "
            f"scores.posterior_samples is {config.scores.posterior_samples}; lower it to at "
            f"most {draws.shape[1]} or bring more draws"
        )
    ds = xr.Dataset(
        {
            "theta": (("observation", "draw", "param"), draws),
            "x_obs": (("observation", "output"), x_obs),
        },
        coords={"param": np.array(list(simulator.prior.names), dtype=object)},
        attrs={"format": SCORES_FORMAT, "kind": "samples", "source": str(config.reference.samples)},
    )
    save_scores(ds, layout.reference_draws)


def save_reference_truth_check(config: StudyConfig, layout: StudyLayout, seed: int) -> None:
    """Where the simulator has an exact posterior but the study uses another reference, the
    C2ST of that reference's draws against exact draws per observation (``truth_check.zarr``):
    the reference procedure's own error, measured."""
    from inference.c2st import c2st

    simulator = study_simulator(config)
    if not isinstance(simulator, ExactPosterior) or config.reference_kind == "exact":
        return
    x_obs = config_observations(config, layout).x
    n = config.scores.posterior_samples
    drawn = reference_for(simulator, layout, config.reference_kind).sample(x_obs, n, seed)
    exact = ExactReference(simulator).sample(x_obs, n, child_seed(seed, 1))
    values = [c2st(exact[i], drawn[i], child_seed(seed, 2, i)) for i in range(len(x_obs))]
    ds = xr.Dataset(
        {"c2st": ("observation", np.asarray(values))},
        attrs={"format": SCORES_FORMAT, "kind": "reference against the exact posterior"},
    )
    save_scores(ds, layout.reference_truth_check)


def save_reference_agreement(config: StudyConfig, layout: StudyLayout, seed: int) -> None:
    """C2ST between every pair of reference members at every observation (the noise floor)."""
    simulator = study_simulator(config)
    reference = reference_for(simulator, layout, config.reference_kind)
    if not isinstance(reference, SimulationReference):
        return  # an exact posterior agrees with itself: there is no noise floor to measure
    x_obs = config_observations(config, layout).x
    agreement = reference.self_agreement(x_obs, config.scores.posterior_samples, seed)
    ds = xr.Dataset(
        {"c2st": (("observation", "member_pair"), agreement)},
        attrs={"format": SCORES_FORMAT, "kind": "reference self-agreement"},
    )
    save_scores(ds, layout.reference_agreement)


def _per_level(ds: xr.Dataset, names: list[str] | tuple[str, ...]) -> dict[str, float]:
    """Each named variable of a one-level Dataset averaged to one number."""
    return {name: float(ds[name].astype(float).mean()) for name in names if name in ds}


def _table(rows: dict[str, dict[str, float]]) -> xr.Dataset:
    """Per-level numbers as a Dataset with a ``level`` dim (NaN where a level lacks one)."""
    columns = sorted({column for row in rows.values() for column in row})
    return xr.Dataset(
        {c: ("level", [rows[level].get(c, np.nan) for level in rows]) for c in columns},
        coords={"level": list(rows)},
    )


def save_trend(layout: StudyLayout, names: list[str], method: str = "npe") -> None:
    """Write ``trend.zarr``: every per-level score against every measured emulator error.

    Errors come from each level's ``emulator_error.zarr`` when present, plus the emulator's
    NLL on the test pairs (``emulator_nll``) from its scores.
    """
    scores: dict[str, dict[str, float]] = {}
    errors: dict[str, dict[str, float]] = {}
    for name in names:
        paths = layout.level(name, method)
        if not paths.scores.exists():
            continue
        ds = load_scores(paths.scores)
        scores[name] = _per_level(ds, trend_scores())
        error = _per_level(ds, ["emulator_nll"])
        if paths.emulator_error.exists():
            measured = load_emulator_error(paths.emulator_error)
            error.update(_per_level(measured, [str(v) for v in measured.data_vars]))
        if error:
            errors[name] = error
    if not errors:
        warnings.warn("no level has a measured emulator error: no trend.zarr", stacklevel=2)
        return
    trend = score_trends(_table(scores), _table(errors))
    trend.attrs.update(
        format=SCORES_FORMAT, kind="score trend against emulator error", method=method
    )
    save_scores(trend, layout.trend_of(method))
