"""Every registered simulator honours the Simulator contract."""

import sys

import numpy as np
import pytest

from simulators import Simulator, available_simulators, make_simulator
from simulators.errors import ConfigError
from simulators.store import Status, create_store, open_store, store_identity, write_rows

EXTERNAL_SCRIPT = (
    "import json, random, sys; p = json.load(open(sys.argv[1])); r = random.Random(p['seed']); "
    "json.dump([t + r.gauss(0, 1) for t in p['theta']], open('out.json', 'w'))"
)
SMALL_SETTINGS = {
    "gaussian_linear": {"dim": 3},
    "misspecified_gaussian_linear": {"dim": 3},
    "normal_location": {"n": 20, "dgp_variance": 2.0},
    "ward_gaussian": {"n": 20},
    "lorenz96": {"J": 4, "spinup": 0.05, "window": 0.1},
    "lorenz96_reduced": {"spinup": 0.05, "window": 0.1},
    "hodgkin_huxley": {"duration": 30.0, "t_on": 5.0, "dt": 0.025},
    "external": {  # a real process per sample: json in, json out, noise from the seed
        "command": [sys.executable, "-c", EXTERNAL_SCRIPT, "{params_file}"],
        "param_names": ["a", "b"],
        "prior": {
            "a": {"distribution": "normal"},
            "b": {"distribution": "uniform", "low": -1.0, "high": 1.0},
        },
        "output_names": ["x_a", "x_b"],
        "output_file": "out.json",
        "output_format": "json",
    },
}


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


def test_a_store_keeps_the_rows_and_the_settings_rebuild_the_campaign(simulator, tmp_path):
    """What a campaign does: store the simulator's identity, write rows, and on resume (or
    on a worker) rebuild the simulator from the stored settings and recognise the store."""
    path = tmp_path / "s.zarr"
    identity = store_identity(simulator, n_samples=3, chunk_size=3, campaign_seed=1)
    assert create_store(path, identity, simulator.prior.names, simulator.output_names)
    theta = simulator.prior.sample(np.random.default_rng(3), 3)
    seeds = np.array([4, 5, 6], dtype=np.uint64)
    x = simulator.simulate(theta, seeds)
    write_rows(path, 0, theta=theta, x=x, seed=seeds, status=np.full(3, Status.OK))
    stored = open_store(path)
    assert stored["x"].values.tobytes() == x.tobytes()
    assert list(stored["output"].values) == list(simulator.output_names)
    rebuilt = make_simulator(stored.attrs["simulator"], **stored.attrs["simulator_settings"])
    again = store_identity(rebuilt, n_samples=3, chunk_size=3, campaign_seed=1)
    assert create_store(path, again, rebuilt.prior.names, rebuilt.output_names) is False
    assert rebuilt.simulate(theta, seeds).tobytes() == x.tobytes()
