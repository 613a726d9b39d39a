"""Fixtures for the emulator tests: small Gaussian-linear stores built with the real store API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from gaussian_stores import FULL, write_gaussian_store

from emulators import FidelityLevel, train_emulator


@pytest.fixture
def gaussian_store(tmp_path: Path) -> Path:
    """A finished store of 2000 valid Gaussian-linear rows (dim 3, noise variance 0.1)."""
    return write_gaussian_store(tmp_path / "gaussian.zarr")


@pytest.fixture
def make_gaussian_store(tmp_path: Path) -> Callable[..., Path]:
    """A store builder: ``make_gaussian_store(name, n, n_valid=..., campaign_seed=...)``."""

    def make(name: str, n: int = 2000, **options: Any) -> Path:
        return write_gaussian_store(tmp_path / name, n, **options)

    return make


@pytest.fixture
def full_level() -> FidelityLevel:
    """The least simplified level of the tests."""
    return FULL


@pytest.fixture(scope="session")
def shared_gaussian_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same store as ``gaussian_store``, built once for the tests that only read it."""
    return write_gaussian_store(tmp_path_factory.mktemp("store") / "gaussian.zarr")


@pytest.fixture(scope="session")
def full_checkpoint(shared_gaussian_store: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``FULL`` level trained on the shared store (seed 0)."""
    out_dir = tmp_path_factory.mktemp("full")
    return train_emulator(shared_gaussian_store, FULL, out_dir, seed=0, progress=False)
