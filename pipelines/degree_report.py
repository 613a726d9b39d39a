"""The report's misspecification sweep: every unit's scores against the degree, as a table
(``misspecification.csv``) and figures, beside the analytic curves of the exact posterior of the
assumed model where the simulator knows them.

Intervals are 95 % bootstrap intervals over observations (the same resampled observations for
every replicate), so they show the Monte Carlo error of a share or mean over ``N`` observations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from inference.degree_scores import DEGREE_CREDIBILITY, coverage_curve
from inference.seeds import child_seed
from pipelines.degrees import OBSERVATION_KNOBS
from simulators.base import Simulator
from simulators.errors import ConfigError
from simulators.misspecified import Misspecified, at_degree

__all__ = ["COVERAGE_LEVELS", "degree_figures", "degree_table"]

COVERAGE_LEVELS = (0.5, 0.9)
"""Credibilities whose coverage of ``theta0`` the table and figures show."""
_BOOTSTRAP = 200


def _coverage(levels: np.ndarray, credibility: float) -> float:
    """Coverage at ``credibility`` averaged over replicates; ``levels`` ``(replicate, N)``."""
    index = int(np.argmin(np.abs(DEGREE_CREDIBILITY - credibility)))
    return float(np.mean([coverage_curve(row)[index] for row in levels]))


def _bootstrap(values: np.ndarray, statistic: Any, seed: int) -> tuple[float, float, float]:
    """Statistic of ``values`` ``(replicate, N)`` and its 95 % interval over observations."""
    rng = np.random.default_rng(seed)
    n = values.shape[1]
    found = [statistic(values[:, rng.integers(0, n, n)]) for _ in range(_BOOTSTRAP)]
    low, high = np.nanpercentile(found, [2.5, 97.5])
    return float(statistic(values)), float(low), float(high)


def _analytic(simulator: Simulator, degree: float) -> dict[str, float]:
    """The exact assumed posterior's coverage and expected ``log p(theta0 | y)`` at ``degree``
    (prior-averaged), where the simulator gives them."""
    if not isinstance(simulator, Misspecified) or not hasattr(simulator, "coverage"):
        return {}
    model: Any = at_degree(simulator, degree)
    try:
        found = {
            f"exact_coverage_{int(100 * c)}": float(model.coverage(c)) for c in COVERAGE_LEVELS
        }
        found["exact_log_q_theta0"] = float(model.expected_log_posterior())
    except ConfigError:  # a model whose summaries leave its posterior unknown has no curve
        return {}
    return found


def degree_table(
    degrees: dict[str, xr.Dataset], units: dict[str, tuple[str, str]], simulator: Simulator | None
) -> pd.DataFrame:
    """One row per unit and degree.

    Parameters
    ----------
    degrees : dict
        Unit name -> its ``degrees.zarr`` (``degree x replicate x observation``).
    units : dict
        Unit name -> (level, method).
    simulator : Simulator, optional
        The study's simulator with its knob (for the analytic columns, on a simulator knob).

    Returns
    -------
    pd.DataFrame
        ``unit, level, method, degree, coverage_<c>[_lo, _hi], log_q_theta0[_lo, _hi],
        squared_error[...], posterior_sd, c2st_dgp[...]`` and ``exact_*`` analytic columns.
    """
    rows = []
    for u, (name, ds) in enumerate(degrees.items()):
        level, method = units[name]
        on_simulator = ds.attrs.get("knob") not in OBSERVATION_KNOBS
        for d, degree in enumerate(ds["degree"].values):
            at = ds.isel(degree=d)
            seed = child_seed(0, u, d)
            row: dict[str, Any] = {
                "unit": name,
                "level": level,
                "method": method,
                "degree": float(degree),
            }
            levels = at["hpd_level"].values
            for c in COVERAGE_LEVELS:
                stem = f"coverage_{int(100 * c)}"
                row[stem], row[f"{stem}_lo"], row[f"{stem}_hi"] = _bootstrap(
                    levels, lambda v, c=c: _coverage(v, c), seed
                )
            for score in ("log_q_theta0", "squared_error", "c2st_dgp"):
                if score not in at:
                    continue
                values = at[score].values
                if np.isnan(values).all():
                    continue
                row[score], row[f"{score}_lo"], row[f"{score}_hi"] = _bootstrap(
                    values, np.nanmean, seed
                )
            row["posterior_sd"] = float(at["posterior_sd"].mean())
            row["observations"] = int(levels.shape[1])
            if simulator is not None and on_simulator:
                row.update(_analytic(simulator, float(degree)))
            rows.append(row)
    return pd.DataFrame(rows)


def degree_figures(table: pd.DataFrame, knob: str) -> list[tuple[str, bytes, str]]:
    """``(name, png, caption)`` of each figure of the sweep: coverage of ``theta0`` at each of
    :data:`COVERAGE_LEVELS`, mean ``log q(theta0 | y)``, squared error of the posterior mean
    and C2ST against the data-generating process's posterior, against the degree."""
    from pipelines.figures import line_against

    shown = [
        (f"coverage_{int(100 * c)}", f"coverage of theta0 by the {c:.0%} HPD region", c)
        for c in COVERAGE_LEVELS
    ] + [
        ("log_q_theta0", "mean log q(theta0 | y) (higher is better)", None),
        ("squared_error", "squared error of the posterior mean (lower is better)", None),
        ("c2st_dgp", "C2ST vs the data-generating process's posterior (0.5 = identical)", None),
    ]
    figures = []
    for column, label, nominal in shown:
        if column not in table or table[column].isna().all():
            continue
        exact = {
            "coverage_50": "exact_coverage_50",
            "coverage_90": "exact_coverage_90",
            "log_q_theta0": "exact_log_q_theta0",
        }.get(column)
        values = table[column].dropna()
        # log q at theta0 of a broken method reaches -40 while the others sit near -1
        wide = column == "log_q_theta0" and values.max() - values.min() > 10
        png = line_against(
            table, "degree", column, knob, label, exact=exact, nominal=nominal, symlog=wide
        )
        figures.append((f"degree_{column}", png, f"{label} against {knob}"))
    return figures
