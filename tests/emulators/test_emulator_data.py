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
    assert [len(theta) for theta, _ in batches] == [256] * 7 + [1800 - 7 * 256]
    seen = torch.cat([theta for theta, _ in batches])
    by_first_column = data.theta_train[:, 0].argsort()
    assert torch.equal(seen[seen[:, 0].argsort()], data.theta_train[by_first_column])
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
