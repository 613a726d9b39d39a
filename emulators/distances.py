"""Two-sample distances between emulator and simulator outputs: C2ST and MMD, in plain torch.

They live here rather than in :mod:`inference.metrics` because that module builds on sbi, and
emulators must not depend on sbi (DESIGN.md). Both are deterministic given ``seed`` and both
z-score the two samples with the mean and standard deviation of the first one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from simulators.errors import ConfigError

__all__ = ["c2st_accuracy", "mmd_squared"]


@contextmanager
def _one_thread() -> Iterator[None]:
    # These small dense problems were measured ~10x slower with two threads on a busy 2-core
    # machine than with one: thread hand-offs dominate.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _subset(
    ta: torch.Tensor, tb: torch.Tensor, max_rows: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    if len(ta) <= max_rows:
        return ta, tb
    keep = torch.randperm(len(ta), generator=torch.Generator().manual_seed(int(seed)))[:max_rows]
    return ta[keep], tb[keep]


def _checked(a: np.ndarray, b: np.ndarray, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape or len(a) < 4:
        raise ConfigError(
            f"{what} needs two samples of the same shape (n, dim) with n >= 4, got {a.shape} and "
            f"{b.shape}; draw the same number of rows from both"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ConfigError(f"{what} got NaN or infinite values; drop those rows first")
    mean, std = a.mean(axis=0), a.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    scale = lambda v: torch.as_tensor((v - mean) / std, dtype=torch.float32)  # noqa: E731
    return scale(a), scale(b)


def c2st_accuracy(
    a: np.ndarray, b: np.ndarray, *, seed: int = 0, steps: int = 300, max_rows: int = 2000
) -> float:
    """Classifier two-sample test: held-out accuracy of an MLP told to separate ``a`` from ``b``.

    Two folds (train on one half, score the other, and swap); an MLP of two hidden layers of
    ``max(32, 10 * dim)`` ReLU units trained full-batch by Adam for ``steps`` steps.

    Parameters
    ----------
    a, b : (n, dim)
    seed : int
    steps : int
    max_rows : int
        Rows of each sample used (the same seeded subset of rows of both).

    Returns
    -------
    accuracy : float
        About 0.5 for samples of one distribution, up to 1.0 for disjoint ones.
    """
    ta, tb = _subset(*_checked(a, b, "c2st_accuracy"), max_rows, seed)
    with _one_thread():
        return _c2st(ta, tb, seed, steps)


def _c2st(ta: torch.Tensor, tb: torch.Tensor, seed: int, steps: int) -> float:
    generator = torch.Generator().manual_seed(int(seed))
    data = torch.cat([ta, tb])
    labels = torch.cat([torch.zeros(len(ta)), torch.ones(len(tb))])
    fold = torch.randperm(len(data), generator=generator) % 2
    width = max(32, 10 * data.shape[1])
    correct = 0.0
    for k in (0, 1):
        train, test = fold != k, fold == k
        torch.manual_seed(int(seed) + k)
        net = nn.Sequential(
            nn.Linear(data.shape[1], width), nn.ReLU(), nn.Linear(width, width), nn.ReLU()
        )
        net.append(nn.Linear(width, 1))
        optimiser = torch.optim.Adam(net.parameters(), lr=1e-2)
        loss_fn = nn.BCEWithLogitsLoss()
        for _ in range(steps):
            optimiser.zero_grad()
            loss = loss_fn(net(data[train]).squeeze(-1), labels[train])
            loss.backward()
            optimiser.step()
        with torch.no_grad():
            guess = (net(data[test]).squeeze(-1) > 0).float()
        correct += float((guess == labels[test]).sum())
    return correct / len(data)


def mmd_squared(a: np.ndarray, b: np.ndarray, *, max_rows: int = 1000, seed: int = 0) -> float:
    """Unbiased squared maximum mean discrepancy with a Gaussian kernel (median heuristic).

    Parameters
    ----------
    a, b : (n, dim)
    max_rows : int
        Rows of each sample used (a seeded subset), since the cost is quadratic.
    seed : int

    Returns
    -------
    mmd2 : float
        About 0 (may be slightly negative) for one distribution; larger is more different.
    """
    ta, tb = _subset(*_checked(a, b, "mmd_squared"), max_rows, seed)
    with _one_thread():
        return _mmd(ta, tb)


def _mmd(ta: torch.Tensor, tb: torch.Tensor) -> float:
    both = torch.cat([ta, tb]).double()
    distances = torch.cdist(both, both).pow(2)
    bandwidth = distances[distances > 0].median()
    kernel = torch.exp(-distances / bandwidth)
    n = len(ta)
    kaa, kbb, kab = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    off = 1.0 - torch.eye(n, dtype=kernel.dtype)
    value = (kaa * off).sum() / (n * (n - 1)) + (kbb * off).sum() / (n * (n - 1))
    return float(value - 2 * kab.mean())
