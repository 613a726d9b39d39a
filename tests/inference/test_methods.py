"""Inference methods as data: the registry, each built-in method against the exact posterior,
files that rebuild the same posterior, and the README's own-method example."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from inference import (
    MCMCSettings,
    MethodContext,
    MethodSettings,
    Posterior,
    available_methods,
    c2st,
    get_method,
    load_posterior,
    score_posterior,
    train_posterior,
    train_posterior_to,
)
from inference.likelihood_mcmc import FunctionLikelihood
from simulators import ConfigError, make_simulator

SIM = make_simulator("gaussian_linear", dim=2, prior_var=0.1, noise_var=0.1)
FAST = MethodSettings(
    hidden_features=20,
    num_transforms=2,
    max_num_epochs=40,
    stop_after_epochs=5,
    mcmc=MCMCSettings(chains=10, warmup=100),
)
README = Path(__file__).parents[2] / "README.md"


def _pairs(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    theta = SIM.prior.sample(np.random.default_rng(seed), n)
    return theta, SIM.simulate(theta, np.arange(n, dtype=np.uint64) + 1000 * seed)


def _exact_likelihood(theta: np.ndarray, x: np.ndarray) -> np.ndarray:
    """log N(x; theta, 0.1 I), pairwise."""
    return -0.5 * ((x - theta) ** 2).sum(axis=1) / 0.1 - np.log(2 * np.pi * 0.1)


EXACT = MethodContext(likelihood=FunctionLikelihood("exact", _exact_likelihood))


def _c2st_to_exact(posterior: Posterior, x_obs: np.ndarray, seed: int = 0) -> np.ndarray:
    draws = posterior.sample_batched(x_obs, 500, seed=seed)
    rng = np.random.default_rng(seed)
    return np.array(
        [
            c2st(draws[:, i], SIM.sample_posterior(x_o, 500, rng), seed)
            for i, x_o in enumerate(x_obs)
        ]
    )


def test_the_registry_lists_the_built_ins_and_explains_unknown_names() -> None:
    assert {"npe", "nle", "nre", "emulator_likelihood"} <= set(available_methods())
    with pytest.raises(ConfigError, match=r"unknown inference method 'npee'.*known methods: .*nle"):
        get_method("npee")
    assert get_method("nle").amortised is False and get_method("npe").amortised is True
    assert get_method("emulator_likelihood").trains is False


def test_a_method_that_samples_a_likelihood_refuses_to_run_without_one() -> None:
    theta, x = _pairs(50)
    with pytest.raises(ConfigError, match="was given none"):
        train_posterior("emulator_likelihood", theta, x, SIM.prior, FAST, seed=0)


def test_mcmc_on_the_exact_likelihood_recovers_the_exact_posterior(tmp_path: Path) -> None:
    theta, x = _pairs(50)
    posterior = train_posterior(
        "emulator_likelihood", theta, x, SIM.prior, FAST, seed=0, context=EXACT
    )
    assert isinstance(posterior, Posterior) and not posterior.normalised
    x_obs = x[:3]
    assert _c2st_to_exact(posterior, x_obs).max() < 0.57
    with pytest.raises(ConfigError, match="no normalised density"):
        posterior.log_prob(theta[:2], x[:2])
    # the unnormalised density is the likelihood plus the log prior, pairwise
    expected = _exact_likelihood(theta[:4], x[:4]) + SIM.prior.log_prob(theta[:4])
    np.testing.assert_allclose(
        posterior.log_prob_unnormalised(theta[:4], x[:4]), expected, rtol=1e-5
    )
    # the file holds no likelihood: loading it needs one, and then draws are identical
    train_posterior_to(
        tmp_path / "p.pt", "emulator_likelihood", theta, x, SIM.prior, FAST, seed=0, context=EXACT
    )
    with pytest.raises(ConfigError, match="pass context=MethodContext"):
        load_posterior(tmp_path / "p.pt", SIM.prior)
    again = load_posterior(tmp_path / "p.pt", SIM.prior, context=EXACT)
    np.testing.assert_array_equal(
        again.sample_batched(x_obs, 50, seed=4), posterior.sample_batched(x_obs, 50, seed=4)
    )


def test_scores_leave_out_what_an_unnormalised_posterior_cannot_have() -> None:
    theta, x = _pairs(60)
    posterior = train_posterior(
        "emulator_likelihood", theta, x, SIM.prior, FAST, seed=0, context=EXACT
    )
    x_obs = x[:2]
    reference = np.stack(
        [SIM.sample_posterior(x_o, 200, np.random.default_rng(1)) for x_o in x_obs]
    )
    scores = score_posterior(
        posterior,
        x_obs=x_obs,
        reference_samples=reference,
        theta_test=theta,
        x_test=x,
        n_posterior_samples=200,
        n_sbc_samples=50,
        seed=0,
        max_test_pairs=30,
    )
    assert "nltp" not in scores and "nltp_mean" not in scores
    assert scores.sizes["test_pair"] == 30
    assert scores.attrs["method"] == "emulator_likelihood"
    # an exact posterior, sampled by MCMC, is calibrated: HPD coverage follows the diagonal
    assert np.abs(scores["hpd_coverage"] - scores["credibility"]).max() < 0.25
    assert (scores["c2st"] < 0.6).all()


@pytest.mark.slow
@pytest.mark.parametrize("method", ["nle", "nre"])
def test_sbi_trained_methods_approach_the_exact_posterior(method: str, tmp_path: Path) -> None:
    theta, x = _pairs(2000)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*max_num_epochs.*")  # NRE may converge first
        posterior = train_posterior(method, theta, x, SIM.prior, FAST, seed=1)
    x_obs = _pairs(3, seed=9)[1]
    accuracy = _c2st_to_exact(posterior, x_obs)
    assert accuracy.max() < 0.62, accuracy
    posterior.save(tmp_path / "p.pt")
    loaded = load_posterior(tmp_path / "p.pt", SIM.prior)
    assert loaded.method == method and loaded.training == posterior.training
    np.testing.assert_array_equal(
        loaded.sample_batched(x_obs, 40, seed=2), posterior.sample_batched(x_obs, 40, seed=2)
    )


def test_the_readme_example_method_is_the_tested_one_and_trains() -> None:
    example = (Path(__file__).parent / "example_method.py").read_text()
    code = example.split('"""', 2)[2].strip()
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert any(code in block for block in blocks), "README's own-method example is out of date"
    import example_method  # noqa: F401  (registers npe_nsf)

    assert "npe_nsf" in available_methods() or get_method("npe_nsf").name == "npe_nsf"
    theta, x = _pairs(300)
    settings = FAST.model_copy(update={"max_num_epochs": 3})
    with pytest.warns(UserWarning, match="max_num_epochs"):
        posterior = train_posterior("npe_nsf", theta, x, SIM.prior, settings, seed=0)
    assert posterior.network_settings.density_estimator == "nsf"
    assert posterior.sample(x[0], 5, seed=0).shape == (5, 2)
