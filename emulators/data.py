"""Training data for an emulator: the valid ``(theta, x)`` pairs of a store, streamed by chunks.

Memory stays bounded by ``buffer_rows`` whatever the size of the store. Setup reads the status
column whole (one byte per row) and keeps one 8-byte index per valid row; everything else is read
one store chunk at a time:

* the z-scoring statistics come from one streaming pass over the training rows (Chan's parallel
  merge of per-chunk means and sums of squares, in float64);
* each training epoch (each pass over the training loader, counted by the module and saved in
  Lightning checkpoints) visits the chunks in an order shuffled by ``(seed, epoch)``, fills a buffer
  of at most ``buffer_rows`` rows, shuffles the rows inside it and cuts batches by slicing
  (a DataLoader collating rows one by one was measured about twice as slow);
* a row is held out for validation by a seeded hash of its store index (the ``n_val`` smallest
  hashes), so the split does not depend on chunking or on the order rows are read.

When all rows (training and validation) fit in the buffer they are read once and kept as
tensors (attributes ``theta_train`` and so on), and epochs only permute them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import lightning
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from emulators.fidelity import MIN_ROWS, EmulatorSpec
from simulators.errors import ConfigError, EmustudyError, StoreError
from simulators.seeding import GOLDEN_GAMMA, mix64
from simulators.store import Status, open_group, open_store

_STATISTICS_ROWS = 4096

__all__ = ["DEFAULT_BUFFER_ROWS", "MIN_ROWS", "StoreDataModule", "split_hash"]

DEFAULT_BUFFER_ROWS = 262_144
"""Rows held in memory at once by default (e.g. 40 MB for 40 float32 columns)."""


def split_hash(seed: int, index: np.ndarray) -> np.ndarray:
    """A seeded 64-bit hash (splitmix64) of store row indices, for the validation split.

    Parameters
    ----------
    seed : int
    index : (n,) int

    Returns
    -------
    hash : (n,) uint64
    """
    with np.errstate(over="ignore"):
        return mix64(np.asarray(index, dtype=np.uint64) + np.uint64(seed) * GOLDEN_GAMMA)


class _Rows(IterableDataset):
    """Batches of a set of store rows, read chunk by chunk through a bounded shuffle buffer."""

    def __init__(self, module: StoreDataModule, rows: np.ndarray, shuffle: bool) -> None:
        self.module, self.rows, self.shuffle = module, rows, shuffle

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor] | list[tuple[Tensor, Tensor]]]:
        batches = self.module._batches(self.rows, self.shuffle)
        k = self.module.batches_per_step
        if k == 1:
            return batches
        return iter(lambda: list(itertools.islice(batches, k)), [])


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
    buffer_rows : int
        Most rows of ``(theta, x)`` held in memory at once (at least one store chunk plus one
        batch are held whatever this says).
    batches_per_step : int
        With 1 the loaders yield ``(theta, x)`` batches of shapes ``(batch, theta_dim)`` and
        ``(batch, x_dim)``; with k > 1 lists of up to k such batches, in the same order, so
        that a Lightning step runs k optimiser steps (see ``ConditionalDensityModule``).

    Attributes
    ----------
    n_train, n_val : int
        Numbers of training and validation rows.
    counts : dict
        Rows of the store per status name; rows other than ``ok`` are excluded.
    statistics : dict of str to (dim,) float64 arrays
        ``theta_mean``, ``theta_std``, ``x_mean``, ``x_std`` of the training rows.
    theta_train, x_train, theta_val, x_val : float32 tensors or None
        The rows themselves when they fit in the buffer (else ``None``).

    The attributes exist after :meth:`setup`, which reads the store (once).
    """

    def __init__(
        self,
        store: Path,
        spec: EmulatorSpec,
        *,
        seed: int = 0,
        buffer_rows: int = DEFAULT_BUFFER_ROWS,
        batches_per_step: int = 1,
    ) -> None:
        super().__init__()
        if batches_per_step < 1:
            raise ConfigError(f"batches_per_step must be >= 1, got {batches_per_step}")
        if buffer_rows < spec.batch_size:
            raise ConfigError(
                f"buffer_rows={buffer_rows} is smaller than batch_size={spec.batch_size}; "
                "raise buffer_rows or lower batch_size"
            )
        self.store, self.spec, self.seed = Path(store), spec, int(seed)
        self.buffer_rows = int(buffer_rows)
        self.batches_per_step = int(batches_per_step)
        self.theta_train: Tensor | None = None
        self.x_train: Tensor | None = None
        self.theta_val: Tensor | None = None
        self.x_val: Tensor | None = None
        self.counts: dict[str, int] = {}
        self.statistics: dict[str, np.ndarray] = {}
        self.epoch = 0
        self._train_rows: np.ndarray | None = None
        self._val_rows = np.empty(0, dtype=np.int64)
        self._chunk = 1
        self._dims = (0, 0)
        self._staging: Tensor | None = None

    def setup(self, stage: str | None = None) -> None:
        """Find the valid rows, split them and compute the z-scoring statistics (once).

        Raises
        ------
        StoreError
            If the store is missing, unfinished, or has fewer than ``MIN_ROWS`` valid rows.
        ConfigError
            If ``spec.train_samples`` is below ``MIN_ROWS`` or above the store's valid rows, or
            the validation fraction leaves fewer than two training rows.
        """
        if self._train_rows is not None:
            return
        wanted = self.spec.train_samples
        if wanted is not None and wanted < MIN_ROWS:
            raise ConfigError(
                f"train_samples={wanted} is below the minimum of {MIN_ROWS} rows an emulator is "
                f"trained on; raise train_samples to at least {MIN_ROWS}"
            )
        ds = open_store(self.store)
        self._chunk = int(ds.attrs["chunk_size"])
        self._dims = (ds.sizes["param"], ds.sizes["output"])
        status = ds["status"].values
        self.counts = {s.name.lower(): int((status == s).sum()) for s in Status}
        if self.counts["pending"]:
            raise StoreError(
                f"{self.store} has {self.counts['pending']} pending rows: its campaign has not "
                "finished; run the campaign again to complete it"
            )
        valid = np.flatnonzero(status == Status.OK)
        del status
        available = len(valid)
        if available < MIN_ROWS:
            raise StoreError(
                f"{self.store} has {available} valid rows ({self.counts}); an emulator needs at "
                f"least {MIN_ROWS}. Run a larger campaign or check why the simulator fails."
            )
        if wanted is not None and wanted > available:
            raise ConfigError(
                f"train_samples={wanted} but {self.store} has only {available} valid rows; "
                f"lower train_samples to at most {available} (or null for all of them), or run a "
                "larger campaign"
            )
        valid = valid[:wanted]
        n = len(valid)
        n_val = max(1, round(n * self.spec.validation_fraction))
        if n - n_val < 2:
            raise ConfigError(
                f"validation_fraction={self.spec.validation_fraction} of {n} rows leaves "
                f"{n - n_val} training rows, expected at least 2; lower validation_fraction"
            )
        held_out = np.zeros(n, dtype=bool)
        held_out[np.argpartition(split_hash(self.seed, valid), n_val - 1)[:n_val]] = True
        self._train_rows, self._val_rows = valid[~held_out], valid[held_out]
        self.statistics = self._statistics(self._train_rows)
        if self.n_train + self.n_val <= self.buffer_rows:
            self.theta_train, self.x_train = self._read(self._train_rows)
            self.theta_val, self.x_val = self._read(self._val_rows)

    @property
    def n_train(self) -> int:
        """Number of training rows (after :meth:`setup`)."""
        return len(self._loaded(self._train_rows))

    @property
    def n_val(self) -> int:
        """Number of validation rows (after :meth:`setup`)."""
        self._loaded(self._train_rows)
        return len(self._val_rows)

    @property
    def theta_dim(self) -> int:
        """Number of parameters (after :meth:`setup`)."""
        self._loaded(self._train_rows)
        return self._dims[0]

    @property
    def x_dim(self) -> int:
        """Number of outputs (after :meth:`setup`)."""
        self._loaded(self._train_rows)
        return self._dims[1]

    def set_epoch(self, epoch: int) -> None:
        """Epoch whose batch order the next pass over the training loader gives."""
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, int]:
        """The next epoch's number: saved in Lightning checkpoints so a resumed run continues
        with the batch order it would have had."""
        return {"epoch": self.epoch}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.epoch = int(state_dict["epoch"])

    def train_dataloader(self) -> DataLoader:
        """Whole shuffled batches; the order is a function of ``(seed, epoch)`` only."""
        return _loader(_Rows(self, self._loaded(self._train_rows), shuffle=True))

    def val_dataloader(self) -> DataLoader:
        """Validation rows in store order, in whole batches."""
        self._loaded(self._train_rows)
        return _loader(_Rows(self, self._val_rows, shuffle=False))

    def _batches(self, rows: np.ndarray, shuffle: bool) -> Iterator[tuple[Tensor, Tensor]]:
        size = self.spec.batch_size
        rng = np.random.default_rng([self.seed, self.epoch])
        if shuffle:  # each pass over the training rows is one epoch
            self.epoch += 1
        cached = (self.theta_train, self.x_train) if rows is self._train_rows else None
        if rows is self._val_rows and self.theta_val is not None:
            cached = (self.theta_val, self.x_val)
        if cached is not None and cached[0] is not None:
            theta, x = cached
            order = torch.from_numpy(rng.permutation(len(theta))) if shuffle else None
            for start in range(0, len(theta), size):
                if order is None:
                    yield theta[start : start + size], x[start : start + size]
                else:
                    index = order[start : start + size]
                    yield theta[index], x[index]
            return
        groups = self._by_chunk(rows)
        if shuffle:
            groups = [groups[i] for i in rng.permutation(len(groups))]
        # One preallocated buffer, filled chunk by chunk; batches are gathered from it by a
        # shuffled index, so no copy of the whole buffer is ever made.
        # Unshuffled (validation) rows need only a chunk and a batch: Lightning validates while
        # the training loader, and its buffer, are still alive.
        capacity = self._chunk + size
        if shuffle:
            capacity = max(self.buffer_rows, capacity)
        buffer = (torch.empty(capacity, self._dims[0]), torch.empty(capacity, self._dims[1]))
        held = 0
        for group in groups:
            if held + len(group) > capacity:
                held = yield from _emit(buffer, held, size, rng if shuffle else None, final=False)
            self._fill(
                group, buffer[0][held : held + len(group)], buffer[1][held : held + len(group)]
            )
            held += len(group)
        yield from _emit(buffer, held, size, rng if shuffle else None, final=True)

    def _by_chunk(self, rows: np.ndarray) -> list[np.ndarray]:
        edges = np.flatnonzero(np.diff(rows // self._chunk)) + 1
        return [group for group in np.split(rows, edges) if len(group)]

    def _read(self, rows: np.ndarray) -> tuple[Tensor, Tensor]:
        """The given (sorted) store rows as float32 ``(rows, theta_dim)``, ``(rows, x_dim)``."""
        theta = torch.empty(len(rows), self._dims[0])
        x = torch.empty(len(rows), self._dims[1])
        self._fill(rows, theta, x)
        return theta, x

    # Reading allocates only what zarr allocates for one chunk of one array: the chunk is cast
    # into a float32 staging tensor kept between reads, and its rows are gathered from there
    # straight into ``out`` (benchmarks/emulator_memory.py).
    def _fill(self, rows: np.ndarray, theta: Tensor, x: Tensor) -> None:
        """Copy the given (sorted) store rows into float32 ``theta`` and ``x`` (one row each)."""
        group = open_group(self.store)
        if self._staging is None:
            self._staging = torch.empty(self._chunk, max(self._dims))
        for name, out in (("theta", theta), ("x", x)):
            done = 0
            for part in self._by_chunk(rows):
                first, last = int(part[0]), int(part[-1]) + 1
                values = torch.from_numpy(group[name][first:last])
                staged = self._staging[: len(values), : values.shape[1]]
                staged.copy_(values)
                del values
                index = torch.from_numpy(part - first)
                torch.index_select(staged, 0, index, out=out[done : done + len(part)])
                done += len(part)

    def _statistics(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Means and standard deviations (float64) of the rows, merged over slices of chunks."""
        group = open_group(self.store)
        stats: dict[str, np.ndarray] = {}
        for name in ("theta", "x"):
            count, mean, m2 = 0, 0.0, 0.0
            for part in self._by_chunk(rows):
                first, last = int(part[0]), int(part[-1]) + 1
                chunk = group[name][first:last]
                local = part - first
                for lo in range(0, len(local), _STATISTICS_ROWS):  # no chunk-sized temporaries
                    values = np.asarray(chunk[local[lo : lo + _STATISTICS_ROWS]], dtype=np.float64)
                    k, part_mean = len(values), values.mean(axis=0)
                    part_m2 = ((values - part_mean) ** 2).sum(axis=0)
                    delta = part_mean - mean
                    mean = mean + delta * k / (count + k)
                    m2 = m2 + part_m2 + delta**2 * count * k / (count + k)
                    count += k
                del chunk
            stats[f"{name}_mean"] = np.asarray(mean)
            stats[f"{name}_std"] = np.sqrt(m2 / (count - 1))
        return stats

    def _loaded(self, rows: np.ndarray | None) -> np.ndarray:
        if rows is None:
            raise EmustudyError(f"the data of {self.store} is not loaded yet; call setup() first")
        return rows


def _emit(
    buffer: tuple[Tensor, Tensor],
    held: int,
    size: int,
    rng: np.random.Generator | None,
    *,
    final: bool,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Yield batches of the first ``held`` buffered rows; keep the rows left over at the front.

    Returns
    -------
    held : int
        Rows left at the front of the buffer (fewer than a batch; 0 when ``final``).
    """
    order = torch.from_numpy(rng.permutation(held)) if rng is not None else torch.arange(held)
    whole = held if final else held - held % size
    for start in range(0, whole, size):
        index = order[start : min(start + size, whole)]
        yield buffer[0][index], buffer[1][index]
    left = order[whole:]
    buffer[0][: len(left)], buffer[1][: len(left)] = buffer[0][left], buffer[1][left]
    return len(left)


def _loader(dataset: _Rows) -> DataLoader:
    # batch_size=None turns off automatic batching: the dataset yields whole batches.
    return DataLoader(dataset, batch_size=None)
