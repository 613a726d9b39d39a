"""The spike-and-slab noise of Ward et al.: the share of slab draws, both parts' distributions,
determinism from the generator alone, and a log density that is the mixture it claims to be."""

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from scipy import stats

from inference.spike_slab import SpikeSlab

N = 200_000
# Kolmogorov-Smirnov critical value at the 0.1 % level is 1.95 / sqrt(n).


def _draw(model: SpikeSlab, backend: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if backend == "numpy":
        return model.sample_numpy((N // 4, 4), np.random.default_rng(seed))
    noise, in_slab = model.sample_torch((N // 4, 4), torch.Generator().manual_seed(seed))
    return noise.double().numpy(), in_slab.numpy()


def _ks(sample: np.ndarray, cdf) -> float:
    return stats.kstest(sample, cdf).statistic


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("slab", ["cauchy", "laplace"])
@pytest.mark.parametrize("slab_prob", [0.5, 0.2])
def test_slab_share_and_both_parts_have_the_declared_distributions(backend, slab, slab_prob):
    model = SpikeSlab(slab_prob=slab_prob, spike_scale=0.01, slab_scale=0.25, slab=slab)
    noise, in_slab = _draw(model, backend, seed=3)
    assert noise.shape == in_slab.shape == (N // 4, 4) and in_slab.dtype == bool
    assert abs(in_slab.mean() - slab_prob) < 4 * np.sqrt(slab_prob * (1 - slab_prob) / N)
    spike, slab_draws = noise[~in_slab], noise[in_slab]
    critical = 1.95 / np.sqrt(len(slab_draws))
    assert _ks(spike, stats.norm(0, 0.01).cdf) < 1.95 / np.sqrt(len(spike))
    assert abs(spike.std() / 0.01 - 1) < 0.01
    truth = stats.cauchy(0, 0.25) if slab == "cauchy" else stats.laplace(0, 0.25)
    assert _ks(slab_draws, truth.cdf) < critical
    # The checks can fail: a slab at twice the scale is rejected.
    wrong = stats.cauchy(0, 0.5) if slab == "cauchy" else stats.laplace(0, 0.5)
    assert _ks(slab_draws, wrong.cdf) > 5 * critical
    # Cauchy: the median |noise| is the scale; Laplace: the mean |noise| is.
    centre = np.median if slab == "cauchy" else np.mean
    assert abs(centre(np.abs(slab_draws)) / 0.25 - 1) < 0.02


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_draws_depend_on_the_generator_only(backend):
    model = SpikeSlab()
    np.random.seed(1)
    torch.manual_seed(1)
    first = _draw(model, backend, seed=7)
    np.random.seed(2)
    torch.manual_seed(2)
    again = _draw(model, backend, seed=7)
    assert first[0].tobytes() == again[0].tobytes()
    assert not np.array_equal(first[0], _draw(model, backend, seed=8)[0])


def test_add_scales_the_noise_per_summary_for_numpy_and_torch():
    model = SpikeSlab(slab_prob=0.0, spike_scale=0.1)
    x = np.zeros((50_000, 2))
    scale = np.array([1.0, 10.0])
    noisy = model.add(x, np.random.default_rng(0), scale)
    np.testing.assert_allclose(noisy.std(axis=0), [0.1, 1.0], rtol=0.02)
    noisy_t = model.add(torch.zeros(50_000, 2), torch.Generator().manual_seed(0), scale)
    assert noisy_t.dtype == torch.float32
    np.testing.assert_allclose(noisy_t.std(dim=0).numpy(), [0.1, 1.0], rtol=0.02)
    with pytest.raises(TypeError, match="torch.Generator"):
        model.add(torch.zeros(3, 2), np.random.default_rng(0))


@pytest.mark.parametrize("slab", ["cauchy", "laplace"])
def test_log_prob_is_the_mixture_density_and_integrates_to_one(slab):
    model = SpikeSlab(slab_prob=0.3, spike_scale=0.05, slab_scale=0.25, slab=slab)
    grid = torch.linspace(-500, 500, 1_000_001, dtype=torch.float64)
    density = model.log_prob(grid[:, None], torch.zeros(1, dtype=torch.float64)).exp()
    assert abs(torch.trapezoid(density, grid).item() - 1) < 2e-4  # Cauchy tails beyond 500: 1e-4
    slab_pdf = stats.cauchy(0, 0.5) if slab == "cauchy" else stats.laplace(0, 0.5)
    y = np.array([[0.0, 0.3], [1.0, -0.05]])
    x = np.array([0.0, 0.1])
    expected = np.log(0.7 * stats.norm(0, 0.1).pdf(y - x) + 0.3 * slab_pdf.pdf(y - x)).sum(axis=1)
    got = model.log_prob(torch.as_tensor(y), torch.as_tensor(x), scale=2.0)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)


def test_edge_probabilities_and_bad_settings():
    y, x = torch.tensor([[0.02, 3.0]], dtype=torch.float64), torch.zeros(2, dtype=torch.float64)
    only_spike = SpikeSlab(slab_prob=0.0).log_prob(y, x)
    np.testing.assert_allclose(only_spike.numpy(), stats.norm(0, 0.01).logpdf([0.02, 3.0]).sum())
    only_slab = SpikeSlab(slab_prob=1.0).log_prob(y, x)
    np.testing.assert_allclose(only_slab.numpy(), stats.cauchy(0, 0.25).logpdf([0.02, 3.0]).sum())
    for bad in ({"slab_prob": 1.5}, {"spike_scale": 0.0}, {"slab": "normal"}, {"rho": 0.5}):
        with pytest.raises(ValidationError):
            SpikeSlab(**bad)
