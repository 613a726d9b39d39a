"""``emustudy sample``: a trained level's posterior at observations the user brings.

The study's posteriors are amortised (or, for MCMC methods, sampled on demand), so once a level
is inferred a user can ask it about any observation: a file of observed outputs (CSV, NPY,
NetCDF, Zarr; :func:`inference.observation_files.read_observations`) goes in, and a CSV of draws
(one row per draw: observation, replicate, the parameters) and a pair plot come out. Existing
files are never overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from inference.seeds import child_seed
from pipelines.config import StudyConfig
from pipelines.layout import CEILING, StudyLayout
from simulators.errors import ConfigError

__all__ = ["SampledPosterior", "describe", "sample_at_observations"]

_PLOTTED = 4


@dataclass(frozen=True)
class SampledPosterior:
    """What :func:`sample_at_observations` wrote.

    Attributes
    ----------
    draws : (n_draws * n_obs * replicates, 2 + n_params) DataFrame
        Columns ``observation``, ``replicate`` and the parameter names.
    csv, figure : Path
    """

    draws: pd.DataFrame
    csv: Path
    figure: Path


def _unit(config: StudyConfig, level: str, method: str) -> tuple[object | None, str]:
    """The ladder level (None for the ceiling) and the unit name, or a ConfigError."""
    levels = {lvl.name: lvl for lvl in config.ladder}
    if level != CEILING and level not in levels:
        raise ConfigError(
            f"no level {level!r} in study {config.name!r}; its levels: "
            f"{', '.join([*levels, CEILING])}"
        )
    if method not in config.inference.methods:
        raise ConfigError(
            f"method {method!r} is not one of the study's ({', '.join(config.inference.methods)});"
            " pass --method with one of them"
        )
    from pipelines.units import Unit

    chosen = None if level == CEILING else levels[level]
    return chosen, Unit(chosen, method).name


def sample_at_observations(
    config: StudyConfig,
    level: str,
    observations: Path,
    *,
    method: str = "npe",
    n: int = 1000,
    out: Path | None = None,
    seed: int = 0,
) -> SampledPosterior:
    """Draw ``n`` samples from each replicate posterior of one unit at every observation of a file.

    Parameters
    ----------
    config : StudyConfig
    level : str
        A ladder level's name, or ``ceiling``.
    observations : Path
        Observed outputs, one row per observation (the simulator's output names as columns).
    method : str
        One of the study's inference methods.
    n : int
        Draws per observation and replicate.
    out : Path, optional
        The CSV to write; default ``<study>/samples/<level>[-<method>]-<file stem>.csv``. The pair
        plot goes beside it (``.png``).
    seed : int

    Raises
    ------
    ConfigError
        For an unknown level or method, a unit whose posteriors are not trained (naming the
        command to run), an unreadable observation file, or an output that exists already.
    """
    from inference.methods import load_posterior
    from inference.observation_files import read_observations
    from pipelines import stages
    from pipelines.figures import pair_plot
    from pipelines.state import stage_states
    from pipelines.units import Unit, study_simulator

    chosen, name = _unit(config, level, method)
    layout = StudyLayout(config.study_dir)
    states = {(s.stage, s.level): s.state for s in stage_states(config, layout, counts=False)}
    if states.get(("infer", name)) != "done":
        raise ConfigError(
            f"the posteriors of {name!r} are {states.get(('infer', name), 'missing')} for this "
            f"config; train them first: `emustudy run CONFIG` (or `emustudy infer CONFIG "
            f"--level {level}`)"
        )
    simulator = study_simulator(config)
    x = read_observations(observations, simulator.output_names, simulator.prior.names).x
    csv = out or layout.root / "samples" / f"{name.replace('/', '-')}-{observations.stem}.csv"
    figure = csv.with_suffix(".png")
    for path in (csv, figure):
        if path.exists():
            raise ConfigError(f"{path} exists; pass another --out or move it away first")
    context = stages.unit_likelihood(config, layout, Unit(chosen, method)).context()
    paths = layout.level(name)
    frames, plotted = [], {}
    for replicate in range(config.inference.replicates):
        posterior = load_posterior(
            paths.replicate_posterior(replicate), simulator.prior, context=context
        )
        draws = posterior.sample_batched(x, n, child_seed(seed, replicate))  # (n, n_obs, p)
        for i in range(len(x)):
            frame = pd.DataFrame(draws[:, i], columns=list(simulator.prior.names))
            frames.append(frame.assign(observation=i, replicate=replicate))
            if replicate == 0 and i < _PLOTTED:
                plotted[f"observation {i}"] = draws[:, i]
    table = pd.concat(frames, ignore_index=True)
    table = table[["observation", "replicate", *simulator.prior.names]]
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, index=False)
    prior = simulator.prior.sample(np.random.default_rng(seed), n)
    figure.write_bytes(pair_plot(plotted, prior, list(simulator.prior.names)))
    return SampledPosterior(table, csv, figure)


def describe(found: SampledPosterior, level: str) -> str:
    """One line for the command line: what was drawn and where it went."""
    observations = found.draws["observation"].nunique()
    replicates = found.draws["replicate"].nunique()
    return (
        f"{len(found.draws):,} draws of {level}'s "
        f"posterior ({observations} observations x {replicates} replicates) -> {found.csv}; "
        f"pair plot (grey: the prior) -> {found.figure}"
    )
