"""A posterior that leaks out of a bounded prior: sampling ends in bounded time and the leakage
is scored, instead of sbi's rejection sampler running for hours.

Bounded time is counted, not timed: every proposal the estimator draws goes through a counter,
and the count must stay within ``2 * MAX_PROPOSALS_PER_DRAW`` per draw asked for (support-mass
estimates included). Rejection at these rows' support mass (below 1 %) would need more than
``MAX_PROPOSALS_PER_DRAW`` per draw on its own.
"""

from __future__ import annotations

import numpy as np
import pytest

from inference import NPESettings, score_posterior, train_npe
from inference.npe import MAX_PROPOSALS_PER_DRAW, NPEPosterior
from pipelines.report_data import SUMMARY_SCORES
from simulators import make_simulator
from simulators.prior import Parameter, Prior

SIM = make_simulator("two_moons")


@pytest.fixture(scope="module")
def leaky():
    rng = np.random.default_rng(0)
    theta = SIM.prior.sample(rng, 500)
    x = SIM.simulate(theta, np.arange(500, dtype=np.uint64))
    settings = NPESettings(
        density_estimator="maf", hidden_features=16, num_transforms=2, max_num_epochs=20
    )
    with pytest.warns(UserWarning):
        trained = train_npe(theta, x, SIM.prior, settings, seed=0)
    # Deliberately leaky: the same estimator under a prior box 50 times narrower, so that at
    # most observations almost all of its mass lies outside the support.
    from sbi.inference import DirectPosterior

    narrow = Prior(
        parameters=[
            Parameter(name=p.name, distribution="uniform", low=-0.02, high=0.02)
            for p in SIM.prior.parameters
        ]
    )
    leaky = NPEPosterior(
        DirectPosterior(trained.posterior.posterior_estimator, narrow.to_torch()),
        settings=settings,
        prior=narrow,
        x_dim=2,
        training=trained.training,
    )
    return leaky, trained, theta, x


def count_proposals(posterior: NPEPosterior, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """A one-item list that counts every draw of ``posterior``'s estimator from now on."""
    estimator = posterior.posterior.posterior_estimator
    original = estimator.sample
    count = [0]

    def counted(sample_shape, condition, **kwargs):
        count[0] += int(np.prod(sample_shape)) * condition.shape[0]
        return original(sample_shape, condition, **kwargs)

    monkeypatch.setattr(estimator, "sample", counted)
    return count


def test_a_leaky_row_is_sampled_in_bounded_time_inside_the_support(leaky, monkeypatch) -> None:
    posterior, trained, _, x = leaky
    mass = posterior.support_mass(x[:20])
    assert (mass < 1 / MAX_PROPOSALS_PER_DRAW).sum() >= 10  # rows that would stall rejection
    proposals = count_proposals(posterior, monkeypatch)
    draws = posterior.sample_batched(x[:20], 200, seed=1)
    assert 0 < proposals[0] <= 2 * MAX_PROPOSALS_PER_DRAW * 20 * 200
    assert draws.shape == (200, 20, 2)
    assert (np.abs(draws) <= 0.02).all()  # every draw inside the narrow box
    # rows that do not leak are sampled as before, by rejection at the support
    plain = trained.sample_batched(x[:3], 100, seed=4)
    again = trained.sample_batched(x[:3], 100, seed=4)
    np.testing.assert_array_equal(plain, again)
    assert (trained.support_mass(x[:3]) > 1 / MAX_PROPOSALS_PER_DRAW).all()


def test_scoring_a_leaky_posterior_finishes_and_reports_the_leakage(leaky, monkeypatch) -> None:
    posterior, trained, theta, x = leaky
    x_obs = x[:2]
    rng = np.random.default_rng(2)
    reference = np.stack([SIM.sample_posterior(x_o, 200, rng) for x_o in x_obs])
    theta_test = np.clip(theta[:50], -0.019, 0.019)  # test parameters must lie in the prior
    proposals = count_proposals(posterior, monkeypatch)
    scores = score_posterior(
        posterior,
        x_obs=x_obs,
        reference_samples=np.clip(reference, -0.019, 0.019),
        theta_test=theta_test,
        x_test=x[:50],
        n_posterior_samples=200,
        n_sbc_samples=30,
        seed=0,
        n_lc2st_null=3,
    )
    draws = 2 * 200 + 50 * 30  # posterior draws per observation, SBC draws per test pair
    assert 0 < proposals[0] <= 2 * MAX_PROPOSALS_PER_DRAW * draws
    assert (scores["support_leakage"].values > 0.95).all()
    # the report's scores table shows it (mean per replicate, in scores.csv and the page)
    assert SUMMARY_SCORES["support_leakage"][0] == "mean"
    honest = score_posterior(
        trained,
        x_obs=x_obs,
        reference_samples=reference,
        theta_test=theta[:50],
        x_test=x[:50],
        n_posterior_samples=200,
        n_sbc_samples=30,
        seed=0,
        n_lc2st_null=3,
    )
    assert (honest["support_leakage"].values < 0.8).all()
