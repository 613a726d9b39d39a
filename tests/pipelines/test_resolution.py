"""Which levels a study resolves: paired differences against the study's own uncertainty."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from pipelines.layout import CEILING
from pipelines.resolution import paired_step, resolve_levels, score_uncertainty


def _nltp(per_pair: np.ndarray, seed_shift: np.ndarray) -> xr.Dataset:
    """Scores of one unit: NLTP (replicate, test_pair) = per_pair + a shift per training seed."""
    values = per_pair[None, :] + seed_shift[:, None]
    return xr.Dataset({"nltp": (("replicate", "test_pair"), values)})


def _c2st(values: np.ndarray) -> xr.Dataset:
    return xr.Dataset({"c2st": (("replicate", "observation"), values)})


def test_the_uncertainty_adds_seed_and_test_pair_parts() -> None:
    rng = np.random.default_rng(0)
    pairs, shifts = rng.normal(0, 2.0, 400), np.array([0.0, 0.3, -0.3])
    ds = _nltp(pairs, shifts)
    expected = np.sqrt(pairs.var(ddof=1) / 400 + shifts.var(ddof=1) / 3)
    assert score_uncertainty(ds, "nltp") == pytest.approx(expected, rel=1e-9)
    assert np.isnan(score_uncertainty(ds, "c2st"))  # a score the unit lacks


def test_pairing_resolves_a_small_shift_that_unpaired_errors_would_hide() -> None:
    rng = np.random.default_rng(1)
    hard = rng.normal(0, 3.0, 300)  # test pairs differ far more than the two levels do
    seeds = np.array([0.0, 0.01, -0.01])
    a, b = _nltp(hard + 0.2, seeds), _nltp(hard + rng.normal(0, 0.1, 300), seeds)
    step, se = paired_step(a, b, "nltp")
    assert step == pytest.approx(0.2, abs=0.03)
    unpaired = np.hypot(score_uncertainty(a, "nltp"), score_uncertainty(b, "nltp"))
    assert se < unpaired / 10
    assert abs(step) > 2 * se > 0


def test_levels_are_resolved_only_from_levels_they_differ_from() -> None:
    rng = np.random.default_rng(2)
    hard = rng.normal(0, 1.0, 200)

    def level(shift: float) -> xr.Dataset:
        return _nltp(hard + shift + rng.normal(0, 0.05, 200), rng.normal(0, 0.02, 3))

    scores = {"a": level(0.0), "b": level(0.5), "c": level(0.51), "d": level(1.5)}
    scores[CEILING] = level(-0.2)
    frame = pd.DataFrame(
        {
            "level": ["a", "b", "c", "d", CEILING],
            "method": "npe",
            "unit": ["a", "b", "c", "d", CEILING],
        }
    )
    found = resolve_levels(frame, scores, "nltp", floor=float("nan"))
    assert found.resolved == {"a": True, "b": False, "c": False, "d": True}
    assert found.count() == 2
    assert found.step["b"].endswith(" resolved") and found.step["c"].endswith("not resolved")
    assert "a" not in found.step and CEILING not in found.resolved


def test_a_c2st_step_within_the_reference_error_is_not_resolved() -> None:
    rng = np.random.default_rng(3)
    base = rng.uniform(0.6, 0.7, (3, 50))
    scores = {"a": _c2st(base), "b": _c2st(base + 0.06)}
    frame = pd.DataFrame({"level": ["a", "b"], "method": "npe", "unit": ["a", "b"]})
    exact = resolve_levels(frame, scores, "c2st", floor=float("nan"))
    assert exact.count() == 2  # with an exact reference a 0.06 step on paired values is clear
    noisy = resolve_levels(frame, scores, "c2st", floor=0.58)  # reference error 0.08 > 0.06
    assert noisy.count() == 0
    assert "reference's own error 0.080" in noisy.margin_note
