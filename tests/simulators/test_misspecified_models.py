"""The misspecified toy models: DGP contract, exact posteriors, coverage and C2ST against the truth.

Every check compares with an answer computed another way: sampling moments of the summaries,
posteriors on a grid from the raw draws (prior times likelihood, no conjugate formula), and Monte
Carlo over many DGP observations for the analytic coverage and expected log density. Settings
with strong prior shrinkage (few draws, a narrow prior) are chosen so that a formula that forgets
the shrinkage, or the bias it causes at a fixed theta0, falls outside the tolerance.
"""

import numpy as np
import pytest
from scipy import stats

from inference.c2st import c2st
from simulators import ConfigError, Misspecified, available_simulators, make_simulator

# Settings away from the well-specified knob value, small enough to be quick.
SMALL = {
    "misspecified_gaussian_linear": {"dim": 3},
    "normal_location": {"n": 20, "dgp_variance": 2.0},
    "ward_gaussian": {"n": 20},
}


def _has_dgp(name: str) -> bool:
    """Whether the simulator is Misspecified (those all build with their default settings)."""
    try:
        return isinstance(make_simulator(name), Misspecified)
    except ConfigError:  # needs settings, like ``external``: not one of the toy models
        return False


MISSPECIFIED = [name for name in available_simulators() if _has_dgp(name)]


def _seeds(n: int, offset: int = 0) -> np.ndarray:
    return np.arange(offset, offset + n, dtype=np.uint64)


def test_the_three_toy_models_are_registered_as_misspecified():
    expected = {"normal_location", "ward_gaussian", "misspecified_gaussian_linear"}
    assert expected <= set(MISSPECIFIED)


@pytest.mark.parametrize("name", MISSPECIFIED)
def test_dgp_honours_the_seeding_contract_and_is_the_model_when_well_specified(name):
    sim = make_simulator(name, **SMALL.get(name, {}))
    theta = sim.prior.sample(np.random.default_rng(0), 5)
    seeds = _seeds(5, 10)
    y = sim.simulate_dgp(theta, seeds)
    assert y.shape == (5, len(sim.output_names)) and y.dtype == np.float64
    rows = [sim.simulate_dgp(theta[i : i + 1], seeds[i : i + 1]) for i in range(5)]
    assert y.tobytes() == np.concatenate(rows).tobytes()
    assert sim.knob_value == sim.settings[sim.knob] != sim.well_specified_value
    assert not np.allclose(y, sim.simulate(theta, seeds))
    well = make_simulator(name, **{**sim.settings, sim.knob: sim.well_specified_value})
    assert well.simulate_dgp(theta, seeds).tobytes() == well.simulate(theta, seeds).tobytes()
    assert sim.sample_dgp_posterior(y[0], 100, np.random.default_rng(1)).shape == (
        100,
        sim.prior.dim,
    )


@pytest.mark.parametrize(("name", "ddof"), [("normal_location", 1), ("ward_gaussian", 0)])
def test_summaries_follow_their_sampling_distribution_under_the_dgp(name, ddof):
    """xbar ~ N(theta0, sigma2/n) independent of the variance, sigma2 chi2(n-1) / (n - ddof)."""
    n, sigma2, theta0, reps = 50, 3.0, 0.7, 20_000
    sim = make_simulator(name, n=n, dgp_variance=sigma2)
    y = sim.simulate_dgp(np.full((reps, 1), theta0), _seeds(reps))
    mean, var = y[:, 0], y[:, 1]
    assert abs(mean.mean() - theta0) < 4 * np.sqrt(sigma2 / n / reps)
    assert abs(mean.var() / (sigma2 / n) - 1) < 0.04
    # (n - 1) s2_unbiased / sigma2 ~ chi2(n - 1); the ddof=0 variance is (n - 1)/n times it.
    factor = sigma2 / (n - ddof)
    expected_mean, expected_var = factor * (n - 1), factor**2 * 2 * (n - 1)
    assert abs(var.mean() - expected_mean) < 4 * np.sqrt(expected_var / reps)  # 0.025 vs 0.06
    assert abs(var.var() / expected_var - 1) < 0.05
    assert abs(np.corrcoef(mean, var)[0, 1]) < 4 / np.sqrt(reps)  # Cochran: independent


def _grid_moments(log_density: np.ndarray, grid: np.ndarray) -> tuple[float, float]:
    weights = np.exp(log_density - log_density.max())
    weights /= weights.sum()
    mean = float(weights @ grid)
    return mean, float(weights @ (grid - mean) ** 2)


@pytest.mark.parametrize("name", ["normal_location", "ward_gaussian"])
def test_both_posteriors_are_prior_times_likelihood_of_the_raw_draws(name):
    """On a grid, from the n raw draws themselves: the summary-based posteriors lose nothing."""
    n, prior_var, sigma2, theta0 = 5, 0.5, 3.0, 1.2
    sim = make_simulator(name, n=n, prior_var=prior_var, dgp_variance=sigma2)
    raw = theta0 + np.sqrt(sigma2) * np.random.default_rng(42).standard_normal(n)
    y = sim.simulate_dgp(np.array([[theta0]]), _seeds(1, 42))[0]
    np.testing.assert_allclose(y, [raw.mean(), raw.var(ddof=sim.ddof)], rtol=1e-12)
    grid = np.linspace(-6, 6, 200_001)
    log_prior = -0.5 * grid**2 / prior_var
    squares = ((raw[:, None] - grid[None, :]) ** 2).sum(axis=0)
    rng = np.random.default_rng(0)
    for variance, moments, sample in [
        (1.0, sim.posterior_moments, sim.sample_posterior),
        (sigma2, sim.dgp_posterior_moments, sim.sample_dgp_posterior),
    ]:
        grid_mean, grid_var = _grid_moments(log_prior - 0.5 * squares / variance, grid)
        mean, var = moments(y)
        np.testing.assert_allclose([mean[0], var], [grid_mean, grid_var], rtol=1e-6)
        draws = sample(y, 100_000, rng)[:, 0]
        assert abs(draws.mean() - grid_mean) < 4 * np.sqrt(grid_var / 100_000)
        assert abs(draws.var() / grid_var - 1) < 0.02
    # The two posteriors differ here, and the prior matters: the checks above can fail.
    assert sim.dgp_posterior_moments(y)[1] > 1.5 * sim.posterior_moments(y)[1]
    assert abs(sim.posterior_moments(y)[0][0] - raw.mean()) > 0.05


def test_gaussian_linear_posteriors_are_prior_times_likelihood_per_dimension():
    sim = make_simulator("misspecified_gaussian_linear", dim=4, dgp_noise_var=0.3)
    theta0 = np.array([[0.3, -0.2, 0.5, 0.0]])
    y = sim.simulate_dgp(theta0, _seeds(1, 5))[0]
    grid = np.linspace(-3, 3, 120_001)
    rng = np.random.default_rng(1)
    for noise, moments, sample in [
        (0.1, sim.posterior_moments, sim.sample_posterior),
        (0.3, sim.dgp_posterior_moments, sim.sample_dgp_posterior),
    ]:
        draws = sample(y, 100_000, rng)
        mean, var = moments(y)
        for j in range(4):
            log_density = -0.5 * grid**2 / 0.1 - 0.5 * (y[j] - grid) ** 2 / noise
            grid_mean, grid_var = _grid_moments(log_density, grid)
            np.testing.assert_allclose([mean[j], var], [grid_mean, grid_var], rtol=1e-6)
            assert abs(draws[:, j].mean() - grid_mean) < 4 * np.sqrt(grid_var / 100_000)
            assert abs(draws[:, j].var() / grid_var - 1) < 0.02
    assert np.allclose(sim.dgp_posterior_moments(y)[1], 0.3 * 0.1 / 0.4)


def _hits(sim, theta: np.ndarray, level: float, offset: int) -> np.ndarray:
    """Whether the assumed posterior's HPD region at each DGP observation holds its theta."""
    y = sim.simulate_dgp(theta, _seeds(len(theta), offset))
    mean, var = sim.assumed.posterior_moments(
        y[:, :1] if sim.name != "misspecified_gaussian_linear" else y
    )
    distance = ((mean - theta) ** 2).sum(axis=1) / var
    return distance <= stats.chi2.ppf(level, theta.shape[1])


@pytest.mark.parametrize("theta0", [None, 1.5])
@pytest.mark.parametrize("sigma2", [1.0, 2.0, 4.0])
def test_normal_location_coverage_follows_the_analytic_curve(sigma2, theta0):
    """20,000 DGP observations per point: binomial SE <= 0.0036, tolerance 4 SE (<= 0.014)."""
    reps, n, prior_var = 20_000, 4, 0.5  # n tau2 = 2: shrinkage c = 2/3
    sim = make_simulator("normal_location", n=n, prior_var=prior_var, dgp_variance=sigma2)
    rng = np.random.default_rng(7)
    theta = sim.prior.sample(rng, reps) if theta0 is None else np.full((reps, 1), theta0)
    for level in (0.5, 0.9):
        observed = _hits(sim, theta, level, offset=int(sigma2 * 1000)).mean()
        expected = sim.coverage(level, theta0)
        tolerance = 4 * np.sqrt(expected * (1 - expected) / reps)
        assert abs(observed - expected) < tolerance, (sigma2, theta0, level, observed, expected)
        # A formula without shrinkage, P(|Z| <= z / sigma), misses by more than the tolerance
        # (except where both are exact: well specified and averaged over the prior).
        z = stats.norm.ppf((1 + level) / 2)
        naive = 2 * stats.norm.cdf(z / np.sqrt(sigma2)) - 1
        assert abs(naive - observed) > tolerance or (sigma2 == 1.0 and theta0 is None)
        # At theta0 = 0 the curve is P(|Z| <= z / sqrt(sigma2 c)); at theta0 = 1.5 the bias
        # from shrinkage moves it by more than the tolerance.
        c = n * prior_var / (n * prior_var + 1)
        at_zero = 2 * stats.norm.cdf(z / np.sqrt(sigma2 * c)) - 1
        assert sim.coverage(level, 0.0) == pytest.approx(at_zero, abs=1e-12)
        assert theta0 is None or abs(at_zero - observed) > tolerance
    if theta0 is None and sigma2 == 1.0:
        assert sim.coverage(0.9) == pytest.approx(0.9, abs=1e-12)  # well specified: calibrated


def test_ward_gaussian_coverage_at_the_papers_setting():
    """Ward et al.'s defaults: the assumed 90 % interval covers about 75 % of the time."""
    sim = make_simulator("ward_gaussian")
    theta = sim.prior.sample(np.random.default_rng(3), 20_000)
    observed = _hits(sim, theta, 0.9, offset=0).mean()
    expected = sim.coverage(0.9)
    z = stats.norm.ppf(0.95)
    assert expected == pytest.approx(2 * stats.norm.cdf(z / np.sqrt(2 * 2500 / 2501)) - 1, abs=1e-4)
    assert abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / 20_000)
    assert 0.74 < expected < 0.77


@pytest.mark.parametrize("theta0", [None, np.array([0.4, -0.3, 0.2])])
def test_gaussian_linear_hpd_coverage_follows_the_analytic_curve(theta0):
    reps = 20_000
    for knob in (0.1, 0.2, 0.4):
        sim = make_simulator("misspecified_gaussian_linear", dim=3, dgp_noise_var=knob)
        rng = np.random.default_rng(11)
        theta = sim.prior.sample(rng, reps) if theta0 is None else np.tile(theta0, (reps, 1))
        for level in (0.5, 0.9):
            observed = _hits(sim, theta, level, offset=int(knob * 1e4)).mean()
            expected = sim.coverage(level, theta0)
            assert abs(observed - expected) < 4 * np.sqrt(expected * (1 - expected) / reps)


@pytest.mark.parametrize("theta0", [None, 1.5])
def test_expected_log_posterior_at_the_truth_matches_monte_carlo(theta0):
    reps = 20_000
    sim = make_simulator("normal_location", n=4, prior_var=0.5, dgp_variance=3.0)
    theta = sim.prior.sample(np.random.default_rng(5), reps) if theta0 is None else None
    theta = np.full((reps, 1), theta0) if theta is None else theta
    y = sim.simulate_dgp(theta, _seeds(reps, 99))
    mean, var = sim.assumed.posterior_moments(y[:, :1])
    log_q = stats.norm.logpdf(theta[:, 0], mean[:, 0], np.sqrt(var))
    assert abs(log_q.mean() - sim.expected_log_posterior(theta0)) < 4 * log_q.std() / np.sqrt(reps)


def _bayes_accuracy(mean_a, var_a, mean_b, var_b, rng) -> float:
    """Best possible C2ST accuracy between N(mean_a, var_a I) and N(mean_b, var_b I)."""

    def log_ratio(t):
        log_a = stats.norm.logpdf(t, mean_a, np.sqrt(var_a)).sum(axis=1)
        return log_a - stats.norm.logpdf(t, mean_b, np.sqrt(var_b)).sum(axis=1)

    a = mean_a + np.sqrt(var_a) * rng.standard_normal((200_000, len(mean_a)))
    b = mean_b + np.sqrt(var_b) * rng.standard_normal((200_000, len(mean_b)))
    return 0.5 * (np.mean(log_ratio(a) > 0) + np.mean(log_ratio(b) <= 0))


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "knobs", "theta0"),
    [
        ("normal_location", [1.0, 2.0, 4.0, 8.0], [1.0]),
        ("misspecified_gaussian_linear", [0.1, 0.2, 0.4, 0.8], [0.2] * 10),
    ],
)
def test_c2st_between_assumed_and_dgp_posterior_grows_with_the_knob(name, knobs, theta0):
    accuracies = []
    for knob in knobs:
        sim = make_simulator(name, **{make_simulator(name).knob: knob})
        y = sim.simulate_dgp(np.array([theta0]), _seeds(1, 7))[0]
        rng = np.random.default_rng(1)
        assumed = sim.sample_posterior(y, 2000, rng)
        dgp = sim.sample_dgp_posterior(y, 2000, rng)
        accuracy = c2st(assumed, dgp, seed=0)
        best = _bayes_accuracy(*sim.posterior_moments(y), *sim.dgp_posterior_moments(y), rng)
        assert abs(accuracy - best) < 0.035, (knob, accuracy, best)
        accuracies.append(accuracy)
    assert accuracies[0] < 0.53  # well specified: indistinguishable
    assert np.all(np.diff(accuracies) > 0.03), accuracies


def test_summaries_can_be_chosen_and_the_dgp_runs_as_a_simulator() -> None:
    from simulators.misspecified import DGPSimulator, at_degree

    both = make_simulator("normal_location", n=20, dgp_variance=3.0)
    mean_only = make_simulator("normal_location", n=20, dgp_variance=3.0, summaries="mean")
    theta = np.array([[0.5], [-1.0]])
    assert mean_only.output_names == ("mean",)
    np.testing.assert_array_equal(
        mean_only.simulate_dgp(theta, _seeds(2)), both.simulate_dgp(theta, _seeds(2))[:, :1]
    )
    rng = np.random.default_rng(0)
    x_o = both.simulate(theta, _seeds(2))[0]
    np.testing.assert_array_equal(
        mean_only.sample_posterior(x_o[:1], 5, np.random.default_rng(1)),
        both.sample_posterior(x_o, 5, np.random.default_rng(1)),
    )
    with pytest.raises(ConfigError, match="not sufficient"):
        make_simulator("normal_location", summaries="variance").sample_posterior(x_o[1:], 5, rng)
    with pytest.raises(ConfigError, match="comma-separated"):
        make_simulator("normal_location", summaries="median")
    dgp = DGPSimulator(at_degree(both, 5.0))
    assert dgp.name == "normal_location:dgp" and dgp.settings["dgp_variance"] == 5.0
    np.testing.assert_array_equal(
        dgp.simulate(theta, _seeds(2)), at_degree(both, 5.0).simulate_dgp(theta, _seeds(2))
    )
    with pytest.raises(ConfigError, match="no misspecification knob"):
        at_degree(make_simulator("gaussian_linear"), 2.0)
