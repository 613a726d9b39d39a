"""NPE trained in an unconstrained space (``unconstrained: true``): no mass leaks out of a bounded
prior, and the density over theta is the change of variables of the density over ``z``.

The model has a known posterior with most of its interest at the prior's edge: theta uniform on
the unit square, ``x = theta + N(0, 0.1^2 I)``, so the posterior is a normal truncated to the
square; at ``x_o = (0.02, 0.97)`` a constrained flow puts several percent of its mass outside.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.stats import truncnorm

from inference import (
    MethodContext,
    MethodSettings,
    NPESettings,
    c2st,
    load_posterior,
    score_posterior,
    train_npe,
    train_posterior,
)
from inference.leakage import support_mass
from inference.settings import network_builder
from inference.unconstrained import UnconstrainedEstimator, as_configured
from simulators import Parameter, Prior

SIGMA = 0.1
PRIOR = Prior(
    parameters=tuple(
        Parameter(name=name, distribution="uniform", low=0.0, high=1.0) for name in "ab"
    )
)
EDGE = np.array([0.02, 0.97])
MIDDLE = np.array([0.5, 0.4])
SETTINGS = NPESettings(
    hidden_features=32, num_transforms=2, max_num_epochs=200, training_batch_size=128
)


def exact_posterior(x_o: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``(n, 2)`` draws of N(x_o, SIGMA^2 I) truncated to the unit square."""
    low, high = (0.0 - x_o) / SIGMA, (1.0 - x_o) / SIGMA
    return np.stack(
        [
            truncnorm.rvs(low[j], high[j], loc=x_o[j], scale=SIGMA, size=n, random_state=seed + j)
            for j in range(2)
        ],
        axis=-1,
    )


@pytest.fixture(scope="module")
def pairs() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    theta = PRIOR.sample(rng, 2000)
    return theta, theta + SIGMA * rng.standard_normal(theta.shape)


@pytest.fixture(scope="module")
def constrained(pairs):
    return train_npe(*pairs, PRIOR, SETTINGS, seed=0)


@pytest.fixture(scope="module")
def unconstrained(pairs):
    settings = SETTINGS.model_copy(update={"unconstrained": True})
    return train_npe(*pairs, PRIOR, settings, seed=0)


def test_no_mass_leaks_and_it_matches_the_exact_posterior(constrained, unconstrained) -> None:
    assert unconstrained.unconstrained and not constrained.unconstrained
    x_t = torch.as_tensor(EDGE[None], dtype=torch.float32)
    # the raw estimators' own draws: the constrained one leaks at the edge, the other cannot
    assert support_mass(constrained.posterior, x_t, 20_000, 2**20)[0] < 0.98
    assert support_mass(unconstrained.posterior, x_t, 20_000, 2**20)[0] == 1.0
    assert unconstrained.support_mass(EDGE[None])[0] == 1.0
    for i, x_o in enumerate((EDGE, MIDDLE)):
        exact = exact_posterior(x_o, 1000, 10 * i)
        free = unconstrained.sample(x_o, 1000, seed=i)
        assert ((free >= 0) & (free <= 1)).all()
        score_free = c2st(exact, free, seed=i)
        score_box = c2st(exact, constrained.sample(x_o, 1000, seed=i), seed=i)
        assert score_free <= 0.65, f"observation {x_o}: C2ST {score_free:.3f}"
        assert score_free <= score_box + 0.05, f"{score_free:.3f} vs constrained {score_box:.3f}"


def test_log_prob_is_the_change_of_variables(unconstrained) -> None:
    theta = np.random.default_rng(1).uniform(0.001, 0.999, size=(500, 2))
    x = np.repeat(EDGE[None], 500, axis=0)
    estimator = unconstrained.posterior.posterior_estimator
    assert isinstance(estimator, UnconstrainedEstimator)
    z = np.log(theta) - np.log1p(-theta)  # logit: T^-1 for the unit square
    with torch.no_grad():
        log_q_z = estimator.net.log_prob(
            torch.as_tensor(z, dtype=torch.float32), torch.as_tensor(x, dtype=torch.float32)
        )
    log_det = -(np.log(theta) + np.log1p(-theta)).sum(axis=1)  # log |dz/dtheta|, width 1
    expected = log_q_z.double().numpy().reshape(-1) + log_det
    np.testing.assert_allclose(unconstrained.log_prob(theta, x), expected, rtol=1e-4, atol=1e-3)
    assert unconstrained.log_prob(np.array([[1.2, 0.5]]), EDGE[None])[0] == -math.inf


def test_log_prob_integrates_to_one_inside_the_support(unconstrained) -> None:
    k = 200
    centres = (np.arange(k) + 0.5) / k
    grid = np.stack(np.meshgrid(centres, centres, indexing="ij"), axis=-1).reshape(-1, 2)
    for x_o in (EDGE, MIDDLE):
        density = np.exp(unconstrained.log_prob(grid, np.repeat(x_o[None], len(grid), axis=0)))
        assert density.sum() / k**2 == pytest.approx(1.0, abs=0.03)


def test_saved_and_loaded_exactly(unconstrained, constrained, tmp_path: Path) -> None:
    unconstrained.save(tmp_path / "free.pt")
    loaded = load_posterior(tmp_path / "free.pt", PRIOR)
    assert loaded.unconstrained and loaded.settings["unconstrained"] is True
    theta = exact_posterior(EDGE, 50, 3)
    x = np.repeat(EDGE[None], 50, axis=0)
    np.testing.assert_array_equal(loaded.log_prob(theta, x), unconstrained.log_prob(theta, x))
    np.testing.assert_array_equal(
        loaded.sample(EDGE, 100, seed=4), unconstrained.sample(EDGE, 100, seed=4)
    )
    # a constrained posterior's file is what main writes: no `unconstrained` key, and it loads so
    constrained.save(tmp_path / "box.pt")
    payload = torch.load(tmp_path / "box.pt", weights_only=True)
    assert "unconstrained" not in payload["settings"]
    assert not load_posterior(tmp_path / "box.pt", PRIOR).unconstrained


def test_the_setting_left_off_changes_no_digest_and_unbounded_priors_are_not_mapped() -> None:
    assert "unconstrained" not in NPESettings().model_dump()
    assert NPESettings(unconstrained=True).model_dump()["unconstrained"] is True
    normal = Prior(parameters=(Parameter(name="m", distribution="normal"),))
    builder = network_builder(NPESettings(), "posterior")
    assert as_configured(builder, True, normal) is builder
    with pytest.raises(TypeError, match="prior"):
        as_configured(builder, True, None)


def test_scored_through_the_normal_path_with_no_leakage(unconstrained, pairs) -> None:
    theta, x = pairs
    x_obs = np.stack([EDGE, MIDDLE])
    scores = score_posterior(
        unconstrained,
        x_obs=x_obs,
        reference_samples=np.stack([exact_posterior(x_o, 500, 7) for x_o in x_obs]),
        theta_test=theta[:50],
        x_test=x[:50],
        n_posterior_samples=500,
        n_sbc_samples=30,
        seed=0,
        n_lc2st_null=3,
    )
    assert (scores["support_leakage"].values == 0).all()
    assert (scores["c2st"].values <= 0.65).all()
    assert np.isfinite(scores["sbc_rank"].values).all()


def test_a_saved_training_state_restores_the_same_network(pairs, tmp_path: Path) -> None:
    settings = NPESettings(
        hidden_features=8, num_transforms=1, max_num_epochs=3, unconstrained=True
    )
    with pytest.warns(UserWarning, match="max_num_epochs"):
        first = train_npe(*pairs, PRIOR, settings, seed=2, checkpoint=tmp_path, checkpoint_every=0)
    again = train_npe(*pairs, PRIOR, settings, seed=2, checkpoint=tmp_path)  # restored, finished
    assert again.unconstrained
    weights = first.posterior.posterior_estimator.state_dict()
    for name, value in again.posterior.posterior_estimator.state_dict().items():
        assert torch.equal(value, weights[name]), name


@pytest.mark.filterwarnings("ignore::UserWarning")  # two epochs do not converge
@pytest.mark.parametrize(
    "method",
    ["nnpe", "mmd_npe", pytest.param("rnpe", marks=pytest.mark.slow)],  # MCMC: 25-45 s
)
def test_npe_variants_train_and_load_unconstrained(method: str, pairs, tmp_path: Path) -> None:
    theta, x = pairs
    settings = MethodSettings(
        hidden_features=8, num_transforms=1, max_num_epochs=2, unconstrained=True
    )
    context = MethodContext(x_obs=EDGE[None])
    posterior = train_posterior(
        method, theta[:400], x[:400], PRIOR, settings, seed=0, context=context
    )
    npe = getattr(posterior, "npe", posterior)  # RNPE wraps an NPE posterior
    assert npe.unconstrained and npe.support_mass(EDGE[None])[0] == 1.0
    posterior.save(tmp_path / "variant.pt")
    loaded = load_posterior(tmp_path / "variant.pt", PRIOR, context=context)
    assert getattr(loaded, "npe", loaded).unconstrained
    np.testing.assert_array_equal(
        loaded.log_prob(theta[:20], x[:20]), posterior.log_prob(theta[:20], x[:20])
    )
