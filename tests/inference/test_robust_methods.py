"""Robust inference methods on Ward et al.'s Gaussian task with strong misspecification.

The assumed model draws 100 values N(theta, 1) and summarises them by mean and variance; the
observations come from N(theta0, 5) (knob ``dgp_variance = 5``), so their variance summary lies
about 28 simulated standard deviations out. Plain NPE extrapolates there and is confidently wrong;
a robust method must stay near the posterior of the data-generating process (DGP). Each method is
scored at ``K`` observations (fixed seeds) by

- cross-entropy ``-E_{theta ~ p_DGP(. | y)} log q(theta | y)`` (KL(p_DGP || q) up to a constant;
  lower is closer to the DGP posterior),
- ``log q(theta0 | y)`` at the true parameter,
- C2ST of q's draws against DGP-posterior draws.

Figures from the run that fixed the tolerances (``-s`` prints them) are in the README.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from inference import (
    MCMCSettings,
    MethodContext,
    MethodSettings,
    Posterior,
    c2st,
    get_method,
    load_posterior,
    train_posterior,
)
from inference.nnpe import noisy_outputs
from inference.spike_slab import SpikeSlab
from simulators import ConfigError, make_simulator

SIM = make_simulator("ward_gaussian", dgp_variance=5.0)
N_TRAIN = 2000
K = 6
SETTINGS = MethodSettings(
    density_estimator="mdn",
    hidden_features=32,
    num_transforms=2,
    max_num_epochs=80,
    stop_after_epochs=10,
    mcmc=MCMCSettings(chains=50, warmup=50),
)


def _pairs() -> tuple[np.ndarray, np.ndarray]:
    theta = SIM.prior.sample(np.random.default_rng(0), N_TRAIN)
    return theta, SIM.simulate(theta, np.arange(N_TRAIN, dtype=np.uint64))


THETA, X = _pairs()
# MMD-regularised NPE sees N_OBSERVED observations at training time; the first K are scored.
N_OBSERVED = 100
THETA0 = SIM.prior.sample(np.random.default_rng(5), N_OBSERVED)
OBSERVED = SIM.simulate_dgp(THETA0, np.arange(N_OBSERVED, dtype=np.uint64) + 10**6)
THETA0, X_OBS = THETA0[:K], OBSERVED[:K]


def _scores(posterior: Posterior, name: str, n: int = 300) -> dict[str, float]:
    """Mean cross-entropy to the DGP posterior, log q at theta0 and C2ST over the K observations."""
    rng = np.random.default_rng(1)
    dgp = np.stack([SIM.sample_dgp_posterior(y, n, rng) for y in X_OBS])  # (K, n, 1)
    pairs_x = np.repeat(X_OBS, n, axis=0)
    cross = -posterior.log_prob(dgp.reshape(K * n, -1), pairs_x).reshape(K, n).mean(axis=1)
    at_truth = posterior.log_prob(THETA0, X_OBS)
    draws = posterior.sample_batched(X_OBS, n, seed=2)
    tests = [c2st(draws[:, i], dgp[i], seed=0) for i in range(K)]
    found = {"cross": cross.mean(), "at_truth": at_truth.mean(), "c2st": float(np.mean(tests))}
    print(f"{name}: " + ", ".join(f"{k} {v:.4g}" for k, v in found.items()))
    return found


def test_the_robust_methods_are_registered_with_their_options() -> None:
    from inference import available_methods

    assert {"nnpe", "rnpe", "mmd_npe"} <= set(available_methods())
    for name in ("nnpe", "rnpe", "mmd_npe"):
        method = get_method(name)
        assert method.name == name and method.options_model is not None
        assert "20" in method.description  # cites its paper's year
        assert method.options(SETTINGS) is not None
    assert get_method("nnpe").amortised and not get_method("rnpe").amortised


@pytest.fixture(scope="module")
def npe_scores() -> dict[str, float]:
    return _scores(train_posterior("npe", THETA, X, SIM.prior, SETTINGS, seed=0), "npe")


def test_nnpe_noise_is_spike_and_slab_in_output_units_and_seeded() -> None:
    noise = SpikeSlab()
    noisy = noisy_outputs(X, noise, seed=3)
    assert np.array_equal(noisy, noisy_outputs(X, noise, seed=3))
    assert not np.array_equal(noisy, noisy_outputs(X, noise, seed=4))
    scaled = (noisy - X) / X.std(axis=0)
    in_spike = np.abs(scaled) < 0.05  # 5 spike sds, where the slab puts 2/pi atan(0.2) of its mass
    expected = 0.5 + 0.5 * 2 / np.pi * np.arctan(0.05 / 0.25)
    assert abs(in_spike.mean() - expected) < 4 * np.sqrt(0.25 / in_spike.size)
    within_one_sd = 0.5 * 0.6827 + 0.5 * 2 / np.pi * np.arctan(0.01 / 0.25)
    assert abs((np.abs(scaled) < 0.01).mean() - within_one_sd) < 4 * np.sqrt(0.25 / scaled.size)
    assert np.median(np.abs(scaled[~in_spike])) > 0.25  # the slab's median |noise| is 0.25


@pytest.mark.slow
def test_nnpe_stays_near_the_dgp_posterior_where_npe_breaks(npe_scores) -> None:
    nnpe = train_posterior("nnpe", THETA, X, SIM.prior, SETTINGS, seed=0)
    assert nnpe.method == "nnpe"
    robust = _scores(nnpe, "nnpe")
    # NPE puts the DGP posterior's mass hundreds of nats down; NNPE a few (its posterior is wide).
    assert npe_scores["cross"] > 100 and robust["cross"] < 10
    assert npe_scores["at_truth"] < -100 and robust["at_truth"] > -10
    assert robust["c2st"] < npe_scores["c2st"] - 0.02


def test_nnpe_options_are_validated_and_its_file_loads_as_nnpe(tmp_path: Path) -> None:
    method = get_method("nnpe")
    assert method.amortised and method.options(SETTINGS) == SpikeSlab()
    with pytest.raises(ValidationError):
        method.options(SETTINGS.model_copy(update={"options": {"nnpe": {"slab_prob": 2}}}))
    quick = SETTINGS.model_copy(
        update={"max_num_epochs": 3, "options": {"nnpe": {"slab_prob": 0.3}}}
    )
    posterior = train_posterior("nnpe", THETA[:300], X[:300], SIM.prior, quick, seed=1)
    posterior.save(tmp_path / "nnpe.pt")
    loaded = load_posterior(tmp_path / "nnpe.pt", SIM.prior)
    assert loaded.method == "nnpe"
    assert np.array_equal(loaded.sample(X_OBS[0], 50, 7), posterior.sample(X_OBS[0], 50, 7))
    other = train_posterior(
        "nnpe",
        THETA[:300],
        X[:300],
        SIM.prior,
        SETTINGS.model_copy(update={"max_num_epochs": 3}),
        seed=1,
    )
    assert not np.array_equal(other.sample(X_OBS[0], 50, 7), posterior.sample(X_OBS[0], 50, 7))


@pytest.fixture(scope="module")
def rnpe():
    return train_posterior("rnpe", THETA, X, SIM.prior, SETTINGS, seed=0)


def test_rnpe_denoising_pulls_back_only_the_misspecified_summary(rnpe) -> None:
    """The variance summary (about 5, far outside the simulations) is denoised to the model's
    (1 +- 0.14); the mean summary, which the model can produce, stays mostly where it was."""
    denoised = rnpe.denoise(X_OBS, 300, seed=0)  # (300, K, 2)
    assert denoised.shape == (300, K, 2)
    variance = denoised[..., 1]
    assert np.all(np.abs(variance.mean(axis=0) - 1.0) < 0.1), variance.mean(axis=0)
    assert np.all(np.abs(variance.std(axis=0) - np.sqrt(2 / 100)) < 0.07)
    moved = np.abs(denoised[..., 0] - X_OBS[:, 0])
    # the spike (weight about one half) pins the mean within 0.01 sd; the slab moves it ~ 0.25 sd
    pinned = (moved < 0.05 * X[:, 0].std()).mean()
    assert 0.2 < pinned < 0.9, pinned


@pytest.mark.slow
def test_rnpe_is_closer_to_the_dgp_posterior_than_npe(rnpe, npe_scores) -> None:
    assert rnpe.method == "rnpe" and not get_method("rnpe").amortised
    robust = _scores(rnpe, "rnpe")
    assert npe_scores["cross"] > 100 and robust["cross"] < 5
    assert npe_scores["at_truth"] < -100 and robust["at_truth"] > -3
    assert robust["c2st"] < npe_scores["c2st"] - 0.15


def test_rnpe_file_loads_as_rnpe_with_identical_draws(tmp_path: Path) -> None:
    quick = SETTINGS.model_copy(
        update={
            "max_num_epochs": 3,
            "mcmc": MCMCSettings(chains=10, warmup=10),
            "options": {"rnpe": {"density_draws": 10, "slab_prob": 0.3}},
        }
    )
    rnpe = train_posterior("rnpe", THETA[:300], X[:300], SIM.prior, quick, seed=1)
    rnpe.save(tmp_path / "rnpe.pt")
    loaded = load_posterior(tmp_path / "rnpe.pt", SIM.prior)
    assert loaded.method == "rnpe" and loaded.options == rnpe.options
    assert loaded.options.slab_prob == 0.3 and loaded.mcmc == quick.mcmc
    assert np.array_equal(loaded.sample(X_OBS[0], 50, 3), rnpe.sample(X_OBS[0], 50, 3))
    assert np.array_equal(
        loaded.log_prob(THETA0[:2], X_OBS[:2]), rnpe.log_prob(THETA0[:2], X_OBS[:2])
    )
    with pytest.raises(ValidationError):
        get_method("rnpe").options(SETTINGS.model_copy(update={"options": {"rnpe": {"x": 1}}}))


def _mmd_npe(weight: float, epochs: int = 80, x_obs: np.ndarray = OBSERVED) -> Posterior:
    settings = SETTINGS.model_copy(
        update={"max_num_epochs": epochs, "options": {"mmd_npe": {"mmd_weight": weight}}}
    )
    context = MethodContext(x_obs=x_obs)
    return train_posterior("mmd_npe", THETA, X, SIM.prior, settings, seed=0, context=context)


@pytest.mark.slow
def test_mmd_penalty_moves_npe_towards_the_dgp_posterior(npe_scores) -> None:
    unpenalised = _scores(_mmd_npe(0.0), "mmd_npe lambda=0")
    robust = _scores(_mmd_npe(10.0), "mmd_npe lambda=10")
    # The embedding alone does not help; the penalty takes the DGP posterior's cross-entropy
    # from tens or thousands of nats to a few.
    assert min(npe_scores["cross"], unpenalised["cross"]) > 30 and robust["cross"] < 10
    assert robust["at_truth"] > -10 and robust["c2st"] < npe_scores["c2st"] - 0.03


def test_mmd_npe_needs_observations_and_they_are_part_of_its_identity(tmp_path: Path) -> None:
    method = get_method("mmd_npe")
    with pytest.raises(ConfigError, match="needs them at training time"):
        train_posterior("mmd_npe", THETA, X, SIM.prior, SETTINGS, seed=0)
    prints = [
        method.fingerprint(THETA, X, SIM.prior, SETTINGS, 0, MethodContext(x_obs=obs))
        for obs in (OBSERVED, OBSERVED[:50], OBSERVED)
    ]
    assert prints[0] != prints[1] and prints[0] == prints[2]
    posterior = _mmd_npe(10.0, epochs=3, x_obs=OBSERVED[:20])
    posterior.save(tmp_path / "mmd.pt")
    loaded = load_posterior(tmp_path / "mmd.pt", SIM.prior)
    assert loaded.method == "mmd_npe" and posterior.training.epochs == 3
    assert np.array_equal(loaded.sample(X_OBS[0], 50, 7), posterior.sample(X_OBS[0], 50, 7))
    assert np.array_equal(loaded.log_prob(THETA0, X_OBS), posterior.log_prob(THETA0, X_OBS))


@pytest.mark.slow
@pytest.mark.acceptance  # 98 s, the suite's longest test; the 13-s RNPE claim above stays in CI
def test_rnpe_is_closer_than_npe_to_the_dgp_posterior_on_the_misspecified_gaussian_linear_model():
    """Ward et al.'s misspecified Gaussian linear model (sbibm's 10-D task, observations with
    noise variance 0.1 + 0.1). RNPE's own NPE is plain NPE with the same seed, so each replicate
    compares the two on the same network: averaging it over denoised observations must bring it
    closer to the posterior of the data-generating process at every observation. Measured
    (3 replicates x 3 observations, 500 draws): RNPE 0.57-0.60, NPE 0.66-0.70 mean C2ST."""
    glm = make_simulator("misspecified_gaussian_linear")
    n, k = 3000, 3
    theta = glm.prior.sample(np.random.default_rng(0), n)
    x = glm.simulate(theta, np.arange(n, dtype=np.uint64))
    theta0 = glm.prior.sample(np.random.default_rng(9), k)
    y = glm.simulate_dgp(theta0, np.arange(k, dtype=np.uint64) + 10**7)
    settings = MethodSettings(
        density_estimator="nsf",
        hidden_features=50,
        num_transforms=3,
        stop_after_epochs=10,
        mcmc=MCMCSettings(chains=20, warmup=20),
        options={"rnpe": {}},
    )
    gaps = []
    for seed in (0, 1, 2):
        rnpe = train_posterior("rnpe", theta, x, glm.prior, settings, seed=seed)
        robust = rnpe.sample_batched(y, 500, seed)
        plain = rnpe.npe.sample_batched(y, 500, seed)
        rng = np.random.default_rng(seed)
        dgp = [glm.sample_dgp_posterior(y[i], 500, rng) for i in range(k)]
        scores = np.array(
            [[c2st(dgp[i], draws[:, i], seed=i) for i in range(k)] for draws in (robust, plain)]
        )
        print(f"seed {seed}: C2ST vs DGP posterior rnpe {scores[0]}, npe {scores[1]}")
        gaps.append(scores[1] - scores[0])
    gaps = np.array(gaps)  # (replicate, observation): NPE's C2ST minus RNPE's
    assert (gaps.mean(axis=1) > 0.04).all(), gaps
    assert (gaps > 0).mean() >= 8 / 9, gaps
