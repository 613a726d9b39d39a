"""The store data module: deterministic split, whole-batch loaders, clear errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from emulators import EmulatorSpec, StoreDataModule
from simulators.errors import ConfigError, EmustudyError, StoreError
from simulators.store import load_pairs


def _loaded(store: Path, seed: int = 0, **spec: object) -> StoreDataModule:
    data = StoreDataModule(store, EmulatorSpec(**spec), seed=seed)
    data.setup("fit")
    return data


def test_split_is_deterministic_disjoint_and_complete(shared_gaussian_store: Path) -> None:
    a, b = _loaded(shared_gaussian_store), _loaded(shared_gaussian_store)
    other = _loaded(shared_gaussian_store, seed=1)
    assert (len(a.theta_train), len(a.theta_val)) == (1800, 200)
    assert a.theta_train.dtype == a.x_val.dtype == torch.float32
    assert torch.equal(a.theta_train, b.theta_train) and torch.equal(a.x_val, b.x_val)
    assert not torch.equal(a.theta_val, other.theta_val)
    theta, _, _ = load_pairs(shared_gaussian_store)
    together = torch.cat([a.theta_train, a.theta_val]).double().numpy()
    assert np.allclose(np.sort(together, axis=0), np.sort(theta, axis=0), atol=1e-6)


def test_train_samples_takes_the_first_valid_rows(shared_gaussian_store: Path) -> None:
    data = _loaded(shared_gaussian_store, train_samples=50)
    assert (len(data.theta_train), len(data.theta_val), data.theta_dim, data.x_dim) == (45, 5, 3, 3)
    theta, _, _ = load_pairs(shared_gaussian_store, limit=50)
    together = torch.cat([data.theta_train, data.theta_val]).double().numpy()
    assert np.allclose(np.sort(together, axis=0), np.sort(theta, axis=0), atol=1e-6)


def test_loaders_yield_whole_batches_covering_every_row(shared_gaussian_store: Path) -> None:
    data = _loaded(shared_gaussian_store, batch_size=256)
    batches = list(data.train_dataloader())
    assert data.epoch == 1  # one pass over the training loader is one epoch
    assert [len(theta) for theta, _ in batches] == [256] * 7 + [1800 - 7 * 256]
    seen = torch.cat([theta for theta, _ in batches])
    by_first_column = data.theta_train[:, 0].argsort()
    assert torch.equal(seen[seen[:, 0].argsort()], data.theta_train[by_first_column])
    later = [theta for theta, _ in data.train_dataloader()]
    assert not torch.equal(later[0], batches[0][0])  # epoch 1 has another order
    data.set_epoch(0)
    again = [theta for theta, _ in data.train_dataloader()]
    assert all(torch.equal(u, v) for u, v in zip(again, [t for t, _ in batches], strict=True))
    theta_val = torch.cat([theta for theta, _ in data.val_dataloader()])
    assert torch.equal(theta_val, data.theta_val)


def test_too_few_valid_rows_is_a_store_error(make_gaussian_store: Callable[..., Path]) -> None:
    store = make_gaussian_store("few.zarr", 40, n_valid=5)
    with pytest.raises(StoreError, match="has 5 valid rows.*at least 10"):
        _loaded(store)


def test_asking_for_more_rows_than_valid_is_a_config_error(
    make_gaussian_store: Callable[..., Path],
) -> None:
    store = make_gaussian_store("some.zarr", 100, n_valid=60)
    with pytest.raises(ConfigError, match="train_samples=80 but .* only 60 valid rows"):
        _loaded(store, train_samples=80)
    assert len(_loaded(store, train_samples=60).theta_train) == 54
    with pytest.raises(ConfigError, match="train_samples=5 is below the minimum of 10"):
        _loaded(store, train_samples=5)


def test_data_before_setup_is_a_clear_error(shared_gaussian_store: Path) -> None:
    data = StoreDataModule(shared_gaussian_store, EmulatorSpec())
    with pytest.raises(EmustudyError, match="call setup"):
        data.train_dataloader()


def _rows(batches: list[tuple[torch.Tensor, torch.Tensor]]) -> np.ndarray:
    theta = torch.cat([theta for theta, _ in batches]).numpy()
    return theta[np.lexsort(theta.T)]


def test_streaming_by_chunks_gives_the_same_rows_with_bounded_buffers(
    make_gaussian_store: Callable[..., Path],
) -> None:
    store = make_gaussian_store("chunked.zarr", 2000, chunk_size=125, n_valid=1900)
    whole = StoreDataModule(store, EmulatorSpec(batch_size=64), seed=3)
    streamed = StoreDataModule(store, EmulatorSpec(batch_size=64), seed=3, buffer_rows=300)
    whole.setup(), streamed.setup()
    assert streamed.theta_train is None and streamed.theta_val is None  # nothing held whole
    assert whole.counts == streamed.counts
    assert (streamed.counts["ok"], streamed.counts["invalid"]) == (1900, 100)
    assert (streamed.n_train, streamed.n_val) == (whole.n_train, whole.n_val) == (1710, 190)
    for key, value in whole.statistics.items():
        np.testing.assert_allclose(streamed.statistics[key], value, rtol=1e-12)
    theta_train = whole.theta_train.double().numpy()
    np.testing.assert_allclose(whole.statistics["theta_mean"], theta_train.mean(0), atol=1e-6)
    np.testing.assert_allclose(whole.statistics["theta_std"], theta_train.std(0, ddof=1), rtol=1e-5)
    batches = list(streamed.train_dataloader())
    sizes = [len(theta) for theta, _ in batches]
    assert max(sizes) == 64 and sizes.count(64) >= len(sizes) - 2 and sum(sizes) == 1710
    np.testing.assert_array_equal(_rows(batches), _rows(list(whole.train_dataloader())))
    second = list(streamed.train_dataloader())
    assert not torch.equal(second[0][0], batches[0][0])
    np.testing.assert_array_equal(_rows(second), _rows(batches))
    val = list(streamed.val_dataloader())
    np.testing.assert_array_equal(_rows(val), _rows([(whole.theta_val, whole.x_val)]))


def test_the_split_does_not_depend_on_chunking(make_gaussian_store: Callable[..., Path]) -> None:
    one = _loaded(make_gaussian_store("one.zarr", 600))
    many = _loaded(make_gaussian_store("many.zarr", 600, chunk_size=64))
    assert torch.equal(one.theta_val, many.theta_val)
    assert torch.equal(one.theta_train, many.theta_train)


def test_a_buffer_smaller_than_a_batch_is_refused(shared_gaussian_store: Path) -> None:
    with pytest.raises(ConfigError, match="buffer_rows=10 is smaller than batch_size=64"):
        StoreDataModule(shared_gaussian_store, EmulatorSpec(batch_size=64), buffer_rows=10)


def test_training_streams_a_store_larger_than_its_buffer(
    make_gaussian_store: Callable[..., Path], tmp_path: Path
) -> None:
    from emulators import FidelityLevel, train_emulator

    store = make_gaussian_store("big.zarr", 2000, chunk_size=125, n_valid=1900)
    level = FidelityLevel(
        name="streamed",
        simplification=0.0,
        emulator=EmulatorSpec(transforms=1, hidden_features=8, batch_size=64, max_epochs=2),
    )
    path = train_emulator(store, level, tmp_path / "out", seed=0, progress=False, buffer_rows=300)
    training = torch.load(path, weights_only=True)["training"]
    assert (training["n_train"], training["n_val"], training["excluded_rows"]) == (1710, 190, 100)
    assert training["epochs"] == 2 and np.isfinite(training["best_val_loss"])
