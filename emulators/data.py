"""Training data for an emulator: the valid ``(theta, x)`` pairs of a simulation store.

The pairs fit in memory, so batches are cut by indexing whole tensors rather than collating
rows one by one: a DataLoader over a ``TensorDataset`` at batch size 256 was measured about twice
as slow as slicing. The loaders therefore hand a list of indices to a dataset that returns the
whole batch at once.
"""

from __future__ import annotations

from pathlib import Path

import lightning
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler

from emulators.fidelity import EmulatorSpec
from simulators.errors import ConfigError, EmustudyError, StoreError
from simulators.store import load_pairs

__all__ = ["MIN_ROWS", "StoreDataModule"]

MIN_ROWS = 10
"""Fewest valid rows an emulator is trained on."""


class _Batches(Dataset):
    """Pairs indexed by a whole list of rows at a time (for ``batch_size=None`` loaders)."""

    def __init__(self, theta: Tensor, x: Tensor) -> None:
        self.theta, self.x = theta, x

    def __len__(self) -> int:
        return len(self.theta)

    def __getitem__(self, rows: list[int]) -> tuple[Tensor, Tensor]:
        index = torch.as_tensor(rows, dtype=torch.long)
        return self.theta[index], self.x[index]


class StoreDataModule(lightning.LightningDataModule):
    """Valid pairs of a store, split into training and validation rows by a seed.

    Parameters
    ----------
    store : Path
        A finished simulation store (see :mod:`simulators.store`).
    spec : EmulatorSpec
        Supplies ``train_samples``, ``validation_fraction`` and ``batch_size``.
    seed : int
        Seeds the train/validation split and the order of training batches.

    Attributes
    ----------
    theta_train, x_train : (n_train, theta_dim), (n_train, x_dim) float32 tensors
    theta_val, x_val : (n_val, theta_dim), (n_val, x_dim) float32 tensors
    counts : dict
        Rows of the store per status name.

    The attributes exist after :meth:`setup`, which reads the store (once).
    """

    def __init__(self, store: Path, spec: EmulatorSpec, *, seed: int = 0) -> None:
        super().__init__()
        self.store, self.spec, self.seed = Path(store), spec, int(seed)
        self.theta_train: Tensor | None = None
        self.x_train: Tensor | None = None
        self.theta_val: Tensor | None = None
        self.x_val: Tensor | None = None
        self.counts: dict[str, int] = {}

    def setup(self, stage: str | None = None) -> None:
        """Load the valid pairs and split them (a no-op when already done).

        Raises
        ------
        StoreError
            If the store is missing, unfinished, or has fewer than ``MIN_ROWS`` valid rows.
        ConfigError
            If ``spec.train_samples`` is below ``MIN_ROWS`` or above the store's valid rows, or
            the validation fraction leaves fewer than two training rows.
        """
        if self.theta_train is not None:
            return
        wanted = self.spec.train_samples
        if wanted is not None and wanted < MIN_ROWS:
            raise ConfigError(
                f"train_samples={wanted} is below the minimum of {MIN_ROWS} rows an emulator is "
                f"trained on; raise train_samples to at least {MIN_ROWS}"
            )
        theta, x, counts = load_pairs(self.store, limit=self.spec.train_samples)
        self.counts = counts
        available = counts["ok"]
        if available < MIN_ROWS:
            raise StoreError(
                f"{self.store} has {available} valid rows ({counts}); an emulator needs at least "
                f"{MIN_ROWS}. Run a larger campaign or check why the simulator fails."
            )
        if wanted is not None and wanted > available:
            raise ConfigError(
                f"train_samples={wanted} but {self.store} has only {available} valid rows; "
                f"lower train_samples to at most {available} (or null for all of them), or run a "
                "larger campaign"
            )
        n = len(theta)
        n_val = max(1, round(n * self.spec.validation_fraction))
        if n - n_val < 2:
            raise ConfigError(
                f"validation_fraction={self.spec.validation_fraction} of {n} rows leaves "
                f"{n - n_val} training rows, expected at least 2; lower validation_fraction"
            )
        order = np.random.default_rng(self.seed).permutation(n)
        train, val = order[n_val:], order[:n_val]
        self.theta_train, self.x_train = _float32(theta[train]), _float32(x[train])
        self.theta_val, self.x_val = _float32(theta[val]), _float32(x[val])

    @property
    def theta_dim(self) -> int:
        """Number of parameters (after :meth:`setup`)."""
        return self._loaded(self.theta_train).shape[1]

    @property
    def x_dim(self) -> int:
        """Number of outputs (after :meth:`setup`)."""
        return self._loaded(self.x_train).shape[1]

    def train_dataloader(self) -> DataLoader:
        """Shuffled whole batches, in an order fixed by the seed."""
        dataset = _Batches(self._loaded(self.theta_train), self._loaded(self.x_train))
        generator = torch.Generator().manual_seed(self.seed)
        sampler = RandomSampler(dataset, generator=generator)
        return _batch_loader(dataset, BatchSampler(sampler, self.spec.batch_size, drop_last=False))

    def val_dataloader(self) -> DataLoader:
        """Validation rows in order, in whole batches."""
        dataset = _Batches(self._loaded(self.theta_val), self._loaded(self.x_val))
        sampler = BatchSampler(SequentialSampler(dataset), self.spec.batch_size, drop_last=False)
        return _batch_loader(dataset, sampler)

    def _loaded(self, values: Tensor | None) -> Tensor:
        if values is None:
            raise EmustudyError(f"the data of {self.store} is not loaded yet; call setup() first")
        return values


def _float32(values: np.ndarray) -> Tensor:
    return torch.as_tensor(values, dtype=torch.float32)


def _batch_loader(dataset: _Batches, sampler: BatchSampler) -> DataLoader:
    # batch_size=None turns off automatic batching: each sampler item is a list of row indices
    # and the dataset returns the whole batch for it.
    return DataLoader(dataset, batch_size=None, sampler=sampler)
