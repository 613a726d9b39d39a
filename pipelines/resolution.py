"""Which levels a study resolves: score differences larger than the study's own uncertainty.

A level's score is a mean over training replicates of a mean over observations or held-out test
pairs. Its uncertainty has two independent parts: the training seed (the spread of the
replicates' means) and the finite set of observations or test pairs. Every level is scored on
the *same* observations and test pairs, so two levels are compared on paired differences: a
test pair that is hard for one level is hard for the other, and pairing removes that shared
part instead of counting it twice.

Two levels are resolved when their difference exceeds twice its standard error, plus, for C2ST,
the reference's own error above chance (its members' mutual C2ST minus 0.5): a C2ST step smaller
than the reference's disagreement with itself says nothing. NLTP needs no reference (it is the
posterior's log density at held-out true parameters, an expected KL divergence from the true
posterior up to a constant), so no reference error enters its margin.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
import xarray as xr

from inference.score_table import score_spec
from pipelines.layout import CEILING

__all__ = ["Resolution", "paired_step", "resolve_levels", "score_uncertainty"]

_PAIRED_DIMS = ("observation", "test_pair")


def _values(ds: xr.Dataset, score: str) -> xr.DataArray | None:
    spec = score_spec(score)
    if spec.name not in ds or spec.summary != "mean":
        return None
    values = ds[spec.name].astype(float)
    return values.squeeze("level", drop=True) if "level" in values.dims else values


def _paired_dim(values: xr.DataArray) -> str | None:
    other = [d for d in values.dims if d != "replicate"]
    return other[0] if len(other) == 1 and other[0] in _PAIRED_DIMS else None


def _replicate_means(values: xr.DataArray) -> np.ndarray:
    other = [d for d in values.dims if d != "replicate"]
    means = np.atleast_1d(values.mean(dim=other, skipna=True).values)
    return means[np.isfinite(means)]


def _seed_variance(values: xr.DataArray) -> float:
    """Variance of the level's mean from its training seeds (0 for one replicate)."""
    means = _replicate_means(values)
    return float(means.var(ddof=1) / means.size) if means.size > 1 else 0.0


def _item_means(values: xr.DataArray) -> np.ndarray:
    """Per observation or test pair, the mean over replicates; shape ``(n_items,)``."""
    if "replicate" in values.dims:
        return values.mean(dim="replicate", skipna=True).values
    return values.values


def score_uncertainty(ds: xr.Dataset, score: str) -> float:
    """Standard error of a unit's mean ``score``: training seeds and observations or test pairs.

    Parameters
    ----------
    ds : xr.Dataset
        The unit's scores (dims ``replicate`` and ``observation`` or ``test_pair``).
    score : str
        A score of :data:`inference.score_table.SCORES` summarised by its mean.

    Returns
    -------
    float
        NaN when the unit lacks the score or the score is not a mean (e.g. SBC's minimum).
    """
    values = _values(ds, score)
    if values is None:
        return float("nan")
    dim = _paired_dim(values)
    items_variance = 0.0
    if dim is not None:
        items = _item_means(values)
        items = items[np.isfinite(items)]
        items_variance = float(items.var(ddof=1) / items.size) if items.size > 1 else 0.0
    return float(np.sqrt(items_variance + _seed_variance(values)))


def paired_step(a: xr.Dataset, b: xr.Dataset, score: str) -> tuple[float, float]:
    """Mean ``score`` of ``a`` minus that of ``b``, and the difference's standard error.

    The observations or test pairs both units were scored on are paired; the training seeds of
    the two units are independent.

    Returns
    -------
    (float, float)
        Difference and standard error; both NaN when either unit lacks the score.
    """
    va, vb = _values(a, score), _values(b, score)
    if va is None or vb is None:
        return float("nan"), float("nan")
    step = float(_replicate_means(va).mean() - _replicate_means(vb).mean())
    dim_a, dim_b = _paired_dim(va), _paired_dim(vb)
    items_variance = 0.0
    if dim_a is not None and dim_a == dim_b and va.sizes[dim_a] == vb.sizes[dim_b]:
        differences = _item_means(va) - _item_means(vb)
        differences = differences[np.isfinite(differences)]
        if differences.size > 1:
            items_variance = float(differences.var(ddof=1) / differences.size)
    se = np.sqrt(items_variance + _seed_variance(va) + _seed_variance(vb))
    return step, float(se)


@dataclass(frozen=True)
class Resolution:
    """Per unit of one method: its score's standard error, its step from the previous level in
    ladder order, and whether it is resolved from every other level of the ladder."""

    se: dict[str, float]
    step: dict[str, str]
    resolved: dict[str, bool]
    margin_note: str

    def count(self) -> int:
        """How many ladder levels are resolved from every other one."""
        return sum(self.resolved.values())


def resolve_levels(
    frame: pd.DataFrame, scores: dict[str, xr.Dataset], score: str, floor: float
) -> Resolution:
    """Resolve the ladder's levels (the ceiling excluded) per method on ``score``.

    Parameters
    ----------
    frame : pd.DataFrame
        The report table: one row per unit with ``level``, ``method`` and ``unit``, ladder order.
    scores : dict
        Each unit's score dataset, by unit name.
    score : str
        The score the levels are judged on (``report.quality_score``).
    floor : float
        Mean C2ST between the reference's members (NaN for an exact reference).
    """
    reference_error = (
        max(floor - 0.5, 0.0) if score_spec(score).name == "c2st" and np.isfinite(floor) else 0.0
    )
    se = {unit: score_uncertainty(scores[unit], score) for unit in frame["unit"]}
    step: dict[str, str] = {}
    resolved: dict[str, bool] = {}
    for _, group in frame[frame["level"] != CEILING].groupby("method", sort=False):
        names = list(group["unit"])
        apart: dict[tuple[int, int], bool] = {}
        for i, j in combinations(range(len(names)), 2):  # each pair once: a - b is -(b - a)
            difference, error = paired_step(scores[names[j]], scores[names[i]], score)
            apart[i, j] = bool(abs(difference) > 2 * error + reference_error)
            if j == i + 1:
                mark = "resolved" if apart[i, j] else "not resolved"
                step[names[j]] = f"{difference:+.3g} {mark}"
        for i, unit in enumerate(names):
            others = [ok for pair, ok in apart.items() if i in pair]
            resolved[unit] = bool(others) and all(others)
    note = "twice the paired standard error" + (
        f" plus the reference's own error {reference_error:.3f}" if reference_error else ""
    )
    return Resolution(se, step, resolved, note)
