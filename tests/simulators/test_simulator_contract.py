"""Every registered simulator honours the Simulator contract."""

import numpy as np
import pytest

from simulators import Simulator, available_simulators, make_simulator
from simulators.errors import ConfigError

SMALL_SETTINGS = {"gaussian_linear": {"dim": 3}}


@pytest.fixture(params=available_simulators())
def simulator(request) -> Simulator:
    return make_simulator(request.param, **SMALL_SETTINGS.get(request.param, {}))


def test_shapes_dtypes_and_names(simulator):
    theta = simulator.prior.sample(np.random.default_rng(0), 7)
    x = simulator.simulate(theta, np.arange(7, dtype=np.uint64))
    assert theta.shape == (7, simulator.prior.dim)
    assert x.shape == (7, len(simulator.output_names))
    assert x.dtype == np.float64
    assert len(set(simulator.prior.names)) == simulator.prior.dim


def test_same_seed_same_bytes_whatever_the_batch(simulator):
    theta = simulator.prior.sample(np.random.default_rng(1), 6)
    seeds = np.array([11, 12, 13, 14, 15, 16], dtype=np.uint64)
    whole = simulator.simulate(theta, seeds)
    one_by_one = np.concatenate(
        [simulator.simulate(theta[i : i + 1], seeds[i : i + 1]) for i in range(6)]
    )
    assert whole.tobytes() == one_by_one.tobytes()
    assert not np.array_equal(whole, simulator.simulate(theta, seeds + 100))


def test_settings_rebuild_the_same_simulator(simulator):
    rebuilt = make_simulator(simulator.name, **simulator.settings)
    theta = simulator.prior.sample(np.random.default_rng(2), 4)
    seeds = np.arange(4, dtype=np.uint64)
    assert rebuilt.simulate(theta, seeds).tobytes() == simulator.simulate(theta, seeds).tobytes()


def test_unknown_simulator_lists_the_known_ones():
    with pytest.raises(ConfigError, match="gaussian_linear") as info:
        make_simulator("no_such_model")
    assert "entry-point group" in str(info.value)


def test_bad_settings_are_a_config_error():
    with pytest.raises(ConfigError, match="gaussian_linear"):
        make_simulator("gaussian_linear", dimension=3)
    with pytest.raises(ConfigError, match="positive variances"):
        make_simulator("gaussian_linear", dim=2, noise_var=-1)
