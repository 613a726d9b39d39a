"""The ``simulation`` reference: members' training checked, and its error on two moons."""

from __future__ import annotations

import time
from contextlib import nullcontext

import numpy as np
import pytest

from inference.c2st import c2st
from inference.errors import ReferenceRefused
from inference.npe import train_npe
from inference.reference import ExactReference
from inference.settings import NPESettings
from inference.simulation_reference import (
    SimulationReference,
    flag_member,
    robust_spread,
    train_simulation_reference,
)
from simulators import ConfigError, Stream, TwoMoons, sample_seeds

# Small and quick to converge: early stopping after 5 epochs without improvement.
QUICK = NPESettings(hidden_features=32, num_transforms=2, learning_rate=1e-3, stop_after_epochs=5)
UNDERTRAINED = QUICK.model_copy(update={"max_num_epochs": 1})


def two_moons_pairs(n: int, campaign_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` prior draws and their two-moons outputs, seeded as a campaign would."""
    sim = TwoMoons()
    idx = np.arange(n)
    theta = sim.prior.sample_from_seeds(sample_seeds(campaign_seed, idx, Stream.PRIOR))
    return theta, sim.simulate(theta, sample_seeds(campaign_seed, idx, Stream.SIMULATION))


def test_the_loss_rule_flags_the_member_of_the_issue_and_not_close_siblings() -> None:
    # the failure reported in issue 13: -0.63 against -2.1 and -2.3
    centre, spread = robust_spread([-2.1, -2.3, -0.63], min_spread=0.1)
    assert (centre, spread) == pytest.approx((-2.1, 0.2))
    assert "7.4 MADs" in flag_member(-0.63, True, centre, spread, tolerance=3)
    assert flag_member(-2.3, True, centre, spread, 3) == ""
    assert flag_member(-2.1, True, centre, spread, 3) == ""
    # members within a few hundredths: the floor keeps them from flagging each other
    centre, spread = robust_spread([-2.30, -2.31, -2.15], min_spread=0.1)
    assert spread == 0.1 and flag_member(-2.15, True, centre, spread, 3) == ""
    assert flag_member(-1.9, True, centre, spread, 3) != ""
    # a member that ran out of epochs is flagged whatever its loss
    assert "not converged" in flag_member(-2.4, False, centre, spread, 3)
    assert "nan" in flag_member(float("nan"), True, centre, spread, 3)
    assert robust_spread([float("nan"), 1.0], 0.1) == (1.0, 0.1)


def undertrain(bad_always: int, bad_first: int):
    """A member trainer that gives member ``bad_always`` one epoch on every run, and member
    ``bad_first`` one epoch on its first run only; every other run trains normally."""

    def train_member(theta, x, prior, settings, *, seed, member, attempt):
        if member == bad_always or (member == bad_first and attempt == 0):
            settings = UNDERTRAINED
        undertrained = settings.max_num_epochs == 1
        with pytest.warns(UserWarning, match="max_num_epochs") if undertrained else nullcontext():
            return train_npe(theta, x, prior, settings, seed=seed)

    return train_member


@pytest.fixture(scope="module")
def checked() -> SimulationReference:
    theta, x = two_moons_pairs(1000, campaign_seed=3)
    return train_simulation_reference(
        theta,
        x,
        TwoMoons().prior,
        QUICK,
        seed=11,
        members=5,
        train_member=undertrain(bad_always=4, bad_first=3),
    )


def test_an_undertrained_member_is_retrained_then_dropped_and_reported(checked) -> None:
    by_run = {(c.member, c.attempt): c for c in checked.checks}
    assert sorted(by_run) == [(0, 0), (1, 0), (2, 0), (3, 0), (3, 1), (4, 0), (4, 1)]
    for member in (0, 1, 2):
        check = by_run[member, 0]
        assert check.status == "kept" and check.reason == "" and check.converged
    # member 4 had one epoch on both runs: flagged for both reasons, retrained, dropped
    assert by_run[4, 0].status == "retrained" and by_run[4, 1].status == "dropped"
    for attempt in (0, 1):
        reason = by_run[4, attempt].reason
        assert "not converged" in reason and "MADs" in reason, reason
    assert by_run[4, 0].seed != by_run[4, 1].seed
    # member 3 had one epoch on its first run only: retrained and kept
    assert by_run[3, 0].status == "retrained" and by_run[3, 1].status == "kept"
    assert checked.dropped == [by_run[4, 1]]
    assert len(checked.members) == 4
    kept_losses = [by_run[m, 0].best_validation_loss for m in (0, 1, 2)]
    assert by_run[4, 1].best_validation_loss > max(kept_losses) + 1.0


def test_the_checked_reference_samples_as_an_ensemble(checked) -> None:
    theta, x = two_moons_pairs(2, campaign_seed=99)
    draws = checked.sample(x, 401, seed=1)
    assert draws.shape == (2, 401, 2)
    np.testing.assert_array_equal(draws, checked.sample(x, 401, seed=1))
    assert (np.abs(draws) <= 1).all()
    assert checked.self_agreement(x, 200, seed=2).shape == (2, 6)
    assert checked.kind == "simulation" and checked.n_pairs == 1000 and checked.seconds > 0


def test_too_few_good_members_is_refused_and_a_small_budget_warned() -> None:
    theta, x = two_moons_pairs(300, campaign_seed=4)

    def always_undertrained(theta, x, prior, settings, *, seed, member, attempt):
        with pytest.warns(UserWarning, match="max_num_epochs"):
            return train_npe(theta, x, prior, UNDERTRAINED, seed=seed)

    with (
        pytest.warns(UserWarning, match="less than 10x the study's training budget"),
        pytest.raises(ReferenceRefused, match="only 0 of 2 reference members") as info,
    ):
        train_simulation_reference(
            theta,
            x,
            TwoMoons().prior,
            QUICK,
            seed=0,
            members=2,
            study_budget=100,
            train_member=always_undertrained,
        )
    assert [c.status for c in info.value.diagnostics] == ["retrained", "dropped"] * 2


@pytest.mark.parametrize("kwargs", [{"members": 1}, {"tolerance": 0.0}, {"min_spread": -1.0}])
def test_bad_arguments_are_refused(kwargs) -> None:
    theta, x = two_moons_pairs(10, campaign_seed=4)
    with pytest.raises(ConfigError):
        train_simulation_reference(theta, x, TwoMoons().prior, QUICK, seed=0, **kwargs)


# The reference of `benchmarks/simulation_reference.py --pairs 3000 --transforms 3 --hidden 50
# --learning-rate 1e-3 --patience 10 --obs 3` (3 NSF members): measured C2ST against the exact
# posterior at these observations, with the C2ST of patience 20, over seeds 0-2: means 0.611,
# 0.631, 0.622, worst observation 0.654 (self-agreement 0.60-0.64). The bounds sit above every
# measured run; an ensemble with an undertrained member was 0.84 away (issue 13), and a 1-epoch
# member alone is ~0.9. The default reference (10,000 pairs) is checked at <= 0.55 by the
# two-moons acceptance study.
MEAN_BOUND, WORST_BOUND = 0.65, 0.69
REFERENCE = NPESettings(
    hidden_features=50, num_transforms=3, learning_rate=1e-3, stop_after_epochs=10
)


@pytest.mark.slow
def test_simulation_reference_is_close_to_the_exact_two_moons_posterior() -> None:
    sim = TwoMoons()
    theta, x = two_moons_pairs(3000, campaign_seed=21)
    start = time.perf_counter()
    reference = train_simulation_reference(theta, x, sim.prior, REFERENCE, seed=0, members=3)
    seconds = time.perf_counter() - start
    assert len(reference.members) == 3
    _, x_obs = two_moons_pairs(3, campaign_seed=12345)
    draws = reference.sample(x_obs, 1000, seed=1000)
    exact = ExactReference(sim).sample(x_obs, 1000, seed=2000)
    scores = [c2st(exact[i], draws[i], seed=0) for i in range(3)]
    print(f"simulation reference: C2ST {np.round(scores, 4)} in {seconds:.0f} s")
    assert np.mean(scores) <= MEAN_BOUND and max(scores) <= WORST_BOUND
