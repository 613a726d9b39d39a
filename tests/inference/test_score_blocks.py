"""Scoring in blocks of observations and test pairs gives the scores of scoring in one go."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from inference.calibration import tarp, tarp_coverage_values, tarp_curve, tarp_references
from inference.score_blocks import block_memory, block_ranges, score_observations, score_pairs
from inference.scores import finish_scores, score_posterior, scoring_context

N_OBS, N_REF, N_PAIRS = 3, 400, 110


def _inputs(problem) -> dict:
    x_obs = problem.x_test[-N_OBS:]
    reference = np.stack(
        [
            problem.sim.sample_posterior(x_o, N_REF, np.random.default_rng(i))
            for i, x_o in enumerate(x_obs)
        ]
    )
    return dict(
        x_obs=x_obs,
        reference_samples=reference,
        theta_test=problem.theta_test[:N_PAIRS],
        x_test=problem.x_test[:N_PAIRS],
        n_posterior_samples=300,
        n_sbc_samples=60,
        seed=5,
        n_lc2st_null=5,
    )


@pytest.fixture(scope="module")
def whole(good_posterior, problem) -> xr.Dataset:
    return score_posterior(good_posterior, **_inputs(problem))


def _blocked(posterior, problem, observations: int, pairs: int) -> xr.Dataset:
    """Score in blocks, the blocks computed in reverse order (as workers may finish them)."""
    context = scoring_context(posterior, **_inputs(problem))
    observed = [
        score_observations(context, a, b) for a, b in block_ranges(N_OBS, observations)[::-1]
    ]
    paired = [score_pairs(context, a, b) for a, b in block_ranges(N_PAIRS, pairs, 25)[::-1]]
    again = scoring_context(posterior, **_inputs(problem))  # a fresh one, as a join task has
    return finish_scores(again, observed, paired)


@pytest.mark.slow
@pytest.mark.parametrize(("observations", "pairs"), [(1, 25), (2, 50)])
def test_block_sizes_do_not_change_the_scores(
    whole, good_posterior, problem, observations, pairs
) -> None:
    blocked = _blocked(good_posterior, problem, observations, pairs)
    assert set(blocked.data_vars) == set(whole.data_vars)
    for name in whole.data_vars:
        if whole[name].dtype.kind in "iu":
            np.testing.assert_array_equal(blocked[name], whole[name], err_msg=name)
        else:  # the same arithmetic per pair; torch may sum a batch in another order
            np.testing.assert_allclose(blocked[name], whole[name], rtol=1e-6, err_msg=name)
    assert blocked.attrs["seed"] == whole.attrs["seed"]


def test_another_seed_changes_the_scores(whole, good_posterior, problem) -> None:
    """The comparison above can fail: the scores depend on the seed, not only on the data."""
    other = score_posterior(good_posterior, **{**_inputs(problem), "seed": 6})
    assert not np.array_equal(other["sbc_rank"], whole["sbc_rank"])
    assert not np.allclose(other["c2st"], whole["c2st"])


def test_joined_tarp_is_tarp_of_all_draws() -> None:
    """TARP from blocks' coverage values is TARP of all draws at once (same references)."""
    rng = np.random.default_rng(0)
    theta = rng.normal(size=(N_PAIRS, 3))
    draws = theta[None] + rng.normal(scale=1.3, size=(60, N_PAIRS, 3))
    whole = tarp(draws, theta, 3)
    box = np.stack([theta.min(axis=0), theta.max(axis=0)])
    references = tarp_references(theta, 3)
    parts = [
        tarp_coverage_values(draws[:, a:b], theta[a:b], references[a:b], box)
        for a, b in ((0, 50), (50, N_PAIRS))
    ]
    joined = tarp_curve(np.concatenate(parts))
    np.testing.assert_array_equal(joined["ecp"], whole["ecp"])
    assert joined["atc"] == whole["atc"] and joined["atc"] > 0.02  # underconfident draws


def test_blocks_are_planned_on_seed_groups() -> None:
    assert block_ranges(110, 30, 25) == [(0, 50), (50, 100), (100, 110)]
    assert block_ranges(4, 3) == [(0, 3), (3, 4)]
    assert block_ranges(0, 3) == []
    with pytest.raises(ValueError):
        block_ranges(10, 0)


def test_block_memory_grows_with_the_block() -> None:
    small = block_memory("pairs", rows=25, draws=200, n_params=4, n_outputs=40, n_pairs=1000)
    large = block_memory("pairs", rows=100, draws=200, n_params=4, n_outputs=40, n_pairs=1000)
    assert large - small == 75 * 200 * (12 * 4 + 12 * 44)
    assert large < 32 * 2**20  # the default block of a Lorenz-96-sized study: tens of MB
