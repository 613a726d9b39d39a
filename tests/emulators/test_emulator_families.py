"""Contract over every emulator family: shapes, determinism, save/load, use in a campaign."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from cluster.campaign import simulate_chunk
from emulators import Emulator, EmulatorSpec, FidelityLevel, train_emulator
from simulators import Simulator, Stream, make_simulator, sample_seeds
from simulators.store import create_store, load_pairs, store_identity

FAMILIES = {
    "maf": {"transforms": 1},
    "nsf": {"transforms": 1},
    "mdn": {"components": 3},
    "gaussian": {},
}


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def trained(
    request: pytest.FixtureRequest,
    shared_gaussian_store: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    family = request.param
    level = FidelityLevel(
        name=f"tiny-{family}",
        simplification=1.0,
        emulator=EmulatorSpec(
            family=family,
            hidden_features=8,
            max_epochs=3,
            train_samples=300,
            **FAMILIES[family],
        ),
    )
    out_dir = tmp_path_factory.mktemp(family)
    return train_emulator(shared_gaussian_store, level, out_dir, seed=0, progress=False)


def _theta_and_seeds(n: int) -> tuple[np.ndarray, np.ndarray]:
    prior = make_simulator("gaussian_linear", dim=3).prior
    theta = prior.sample_from_seeds(sample_seeds(4, np.arange(n), Stream.PRIOR))
    return theta, sample_seeds(4, np.arange(n), Stream.SIMULATION)


def test_shapes_and_same_seed_determinism(trained: Path) -> None:
    emulator, twin = Emulator.load(trained), Emulator.load(trained)
    assert isinstance(emulator, Simulator)
    theta, seeds = _theta_and_seeds(50)
    x = emulator.simulate(theta, seeds)
    assert x.shape == (50, 3) and x.dtype == np.float64 and np.isfinite(x).all()
    assert x.tobytes() == twin.simulate(theta, seeds).tobytes()
    other = emulator.simulate(theta, sample_seeds(5, np.arange(50), Stream.SIMULATION))
    assert not np.allclose(x, other)
    one_by_one = np.concatenate(
        [emulator.simulate(theta[i : i + 1], seeds[i : i + 1]) for i in range(5)]
    )
    np.testing.assert_allclose(one_by_one, x[:5], rtol=0, atol=1e-6)
    log_prob = emulator.log_prob(x, theta)
    assert log_prob.shape == (50,) and np.isfinite(log_prob).all()


def test_save_load_round_trip(trained: Path) -> None:
    checkpoint = torch.load(trained, weights_only=True)
    emulator = Emulator.load(trained)
    assert emulator.level.model_dump(mode="json") == checkpoint["spec"]
    copy = pickle.loads(pickle.dumps(emulator))
    theta, seeds = _theta_and_seeds(20)
    assert copy.simulate(theta, seeds).tobytes() == emulator.simulate(theta, seeds).tobytes()
    assert np.array_equal(
        copy.log_prob(emulator.simulate(theta, seeds), theta),
        emulator.log_prob(emulator.simulate(theta, seeds), theta),
    )


def test_used_as_a_simulator_in_a_campaign(trained: Path, tmp_path: Path) -> None:
    emulator = Emulator.load(trained)
    store = tmp_path / "emulated.zarr"
    identity = store_identity(emulator, n_samples=30, chunk_size=15, campaign_seed=2)
    create_store(store, identity, emulator.prior.names, emulator.output_names)
    for start in (0, 15):
        simulate_chunk(emulator, store, start, start + 15, 2)
    theta, x, counts = load_pairs(store)
    assert counts["ok"] == 30 and x.shape == (30, 3)


def test_mixture_samples_follow_its_own_density(
    shared_gaussian_store: Path, tmp_path: Path
) -> None:
    """Sampling and log_prob of an MDN agree: the sample mean matches the density's mean."""
    level = FidelityLevel(
        name="mdn",
        simplification=0.0,
        emulator=EmulatorSpec(family="mdn", components=3, hidden_features=16, max_epochs=30),
    )
    emulator = Emulator.load(train_emulator(shared_gaussian_store, level, tmp_path, progress=False))
    theta = np.tile([[0.2, -0.1, 0.0]], (4000, 1))
    x = emulator.simulate(theta, sample_seeds(1, np.arange(4000), Stream.SIMULATION))
    grid = np.linspace(-2, 2, 801)
    column = np.tile(x.mean(axis=0), (801, 1))
    column[:, 0] = grid
    density = np.exp(emulator.log_prob(column, theta[:801]))
    # marginal of x_0 is not the conditional slice, but both are centred where the model is
    # (the Gaussian-linear truth is centred at theta_0 = 0.2, sd 0.32)
    assert abs(x[:, 0].mean() - 0.2) < 0.1
    assert abs(grid[density.argmax()] - 0.2) < 0.1


@pytest.mark.parametrize(
    ("family", "knob", "value"),
    [("maf", "components", 3), ("gaussian", "components", 2), ("mdn", "transforms", 2)],
)
def test_a_knob_the_family_lacks_is_refused(family: str, knob: str, value: int) -> None:
    with pytest.raises(ValidationError, match=f"{knob}={value} does not apply to family"):
        EmulatorSpec(family=family, **{knob: value})


def test_family_defaults() -> None:
    assert EmulatorSpec().transforms == 3 and EmulatorSpec().components is None
    assert EmulatorSpec(family="mdn").components == 5
    assert EmulatorSpec(family="gaussian").n_components == 1
    spec = EmulatorSpec(family="mdn", components=2)
    assert EmulatorSpec.model_validate(spec.model_dump(mode="json")) == spec
