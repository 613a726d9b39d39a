"""Training writes a safe checkpoint; the loaded Emulator behaves as a Simulator must."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import cloudpickle
import numpy as np
import pytest
import torch

from cluster.campaign import simulate_chunk
from emulators import Emulator, EmulatorSpec, FidelityLevel, train_emulator
from simulators import ConfigError, Simulator, Stream, make_simulator, sample_seeds
from simulators.store import create_store, load_pairs, open_store, store_identity

TINY = FidelityLevel(
    name="tiny",
    simplification=3.0,
    emulator=EmulatorSpec(hidden_features=8, transforms=1, max_epochs=3, train_samples=300),
)


def _theta_and_seeds(n: int, campaign_seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    prior = make_simulator("gaussian_linear", dim=3).prior
    indices = np.arange(n)
    theta = prior.sample_from_seeds(sample_seeds(campaign_seed, indices, Stream.PRIOR))
    return theta, sample_seeds(campaign_seed, indices, Stream.SIMULATION)


def test_checkpoint_holds_plain_types_and_the_training_record(full_checkpoint: Path) -> None:
    assert full_checkpoint.name == "emulator.pt"
    checkpoint = torch.load(full_checkpoint, weights_only=True, map_location="cpu")
    assert checkpoint["format"] == "emustudy-emulator/1"
    assert (checkpoint["theta_dim"], checkpoint["x_dim"]) == (3, 3)
    assert checkpoint["spec"]["name"] == "full"
    assert checkpoint["simulator"]["name"] == "gaussian_linear"
    assert checkpoint["simulator"]["settings"] == {"dim": 3, "prior_var": 0.1, "noise_var": 0.1}
    assert checkpoint["simulator"]["output_names"] == ["x_0", "x_1", "x_2"]
    training = checkpoint["training"]
    assert (training["n_train"], training["n_val"]) == (1800, 200)
    assert 0 <= training["best_epoch"] <= training["epochs"] <= 150
    assert np.isfinite(training["best_val_loss"]) and training["seconds"] > 0
    assert {"theta_mean", "theta_std", "x_mean", "x_std"} <= set(checkpoint["state_dict"])
    log = full_checkpoint.parent / "logs" / "version_0" / "metrics.csv"
    assert "val_loss" in log.read_text().splitlines()[0]
    assert [p.name for p in full_checkpoint.parent.iterdir() if p.suffix == ".tmp"] == []


def test_training_is_reproducible(shared_gaussian_store: Path, tmp_path: Path) -> None:
    def weights(seed: int, folder: str) -> dict[str, torch.Tensor]:
        out_dir = tmp_path / folder
        path = train_emulator(shared_gaussian_store, TINY, out_dir, seed=seed, progress=False)
        return torch.load(path, weights_only=True)["state_dict"]

    first, again, other = weights(0, "a"), weights(0, "b"), weights(1, "c")
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert not all(torch.equal(first[key], other[key]) for key in first)


def test_loaded_emulator_is_a_simulator_of_the_level(full_checkpoint: Path) -> None:
    emulator = Emulator.load(full_checkpoint)
    truth = make_simulator("gaussian_linear", dim=3)
    assert isinstance(emulator, Simulator)
    assert emulator.name == "emulator[full]"
    assert emulator.level.name == "full" and emulator.level.emulator.transforms == 1
    assert emulator.prior == truth.prior
    assert emulator.output_names == truth.output_names
    digest = hashlib.sha256(full_checkpoint.read_bytes()).hexdigest()[:16]
    assert emulator.settings == {
        "checkpoint": str(full_checkpoint.resolve()),
        "level": "full",
        "emulates": "gaussian_linear",
        "checkpoint_sha256": digest,
    }
    identity = store_identity(emulator, n_samples=10, chunk_size=10, campaign_seed=0)
    assert json.loads(json.dumps(identity))["simulator_settings"]["checkpoint_sha256"] == digest


def test_simulate_is_a_function_of_theta_and_seeds(full_checkpoint: Path) -> None:
    emulator, twin = Emulator.load(full_checkpoint), Emulator.load(full_checkpoint)
    theta, seeds = _theta_and_seeds(64)
    x = emulator.simulate(theta, seeds)
    assert x.shape == (64, 3) and x.dtype == np.float64 and np.isfinite(x).all()
    assert x.tobytes() == emulator.simulate(theta, seeds).tobytes()
    assert x.tobytes() == twin.simulate(theta, seeds).tobytes()
    other = emulator.simulate(theta, sample_seeds(8, np.arange(64), Stream.SIMULATION))
    assert not np.allclose(x, other)
    assert emulator.simulate(theta[:0], seeds[:0]).shape == (0, 3)


def test_row_does_not_depend_on_the_rest_of_the_batch(full_checkpoint: Path) -> None:
    emulator = Emulator.load(full_checkpoint)
    theta, seeds = _theta_and_seeds(8)
    batch = emulator.simulate(theta, seeds)
    one_by_one = np.concatenate(
        [emulator.simulate(theta[i : i + 1], seeds[i : i + 1]) for i in range(8)]
    )
    # float32 matrix products may round differently for different batch sizes, so rows agree
    # to float32 precision rather than bit for bit.
    np.testing.assert_allclose(batch, one_by_one, rtol=0, atol=1e-6)
    shuffled = np.random.default_rng(0).permutation(8)
    reordered = emulator.simulate(theta[shuffled], seeds[shuffled])
    np.testing.assert_allclose(reordered, batch[shuffled], rtol=0, atol=1e-6)


def test_emulator_fills_a_store_like_a_simulator(full_checkpoint: Path, tmp_path: Path) -> None:
    emulator = Emulator.load(full_checkpoint)
    store = tmp_path / "emulated.zarr"
    identity = store_identity(emulator, n_samples=40, chunk_size=20, campaign_seed=3)
    create_store(store, identity, emulator.prior.names, emulator.output_names)
    for start in (0, 20):
        simulate_chunk(emulator, store, start, start + 20, 3)
    theta, x, counts = load_pairs(store)
    assert counts["ok"] == 40
    seeds = open_store(store)["seed"].values
    # Chunks of 20 rows against one batch of 40: equal to float32 precision (see below).
    np.testing.assert_allclose(x, emulator.simulate(theta, seeds), rtol=0, atol=1e-6)
    assert open_store(store).attrs["simulator"] == "emulator[full]"


@pytest.mark.parametrize("pickler", [pickle, cloudpickle], ids=["pickle", "cloudpickle"])
def test_emulator_pickles_for_dask_workers(full_checkpoint: Path, pickler: object) -> None:
    emulator = Emulator.load(full_checkpoint)
    copy = pickler.loads(pickler.dumps(emulator))  # type: ignore[attr-defined]
    theta, seeds = _theta_and_seeds(32)
    assert copy.simulate(theta, seeds).tobytes() == emulator.simulate(theta, seeds).tobytes()
    assert copy.settings == emulator.settings and copy.level == emulator.level


def test_log_prob_shapes_and_bad_inputs(full_checkpoint: Path) -> None:
    emulator = Emulator.load(full_checkpoint)
    theta, seeds = _theta_and_seeds(16)
    x = emulator.simulate(theta, seeds)
    log_prob = emulator.log_prob(x, theta)
    assert log_prob.shape == (16,) and log_prob.dtype == np.float64 and np.isfinite(log_prob).all()
    with pytest.raises(ConfigError, match=r"expected theta of shape \(batch, 3\)"):
        emulator.simulate(theta[:, :2], seeds)
    with pytest.raises(ConfigError, match="one seed per row"):
        emulator.simulate(theta, seeds[:3])
    with pytest.raises(ConfigError, match="expected x of shape"):
        emulator.log_prob(x[:3], theta)
