"""A fast classifier two-sample test (C2ST): k MLPs trained side by side in batched torch.

The test asks how well a classifier tells two samples apart: held-out accuracy 0.5 means they are
indistinguishable, 1.0 means fully separated. For two Gaussians with unit variance whose means are
``d`` apart, the best possible accuracy is ``Phi(d / 2)``.

:func:`c2st` follows sbi's recipe (z-scoring by the first sample, an MLP with two hidden ReLU
layers, Adam, early stopping on held-out data, k-fold cross-validation), but trains the ``k`` fold
classifiers at once as one batched network (``torch.bmm`` over folds) with large mini-batches, on
the GPU when one is present, and with ``max(32, 5 * n_params)`` hidden units instead of sbi's
``10 * n_params``: on 10-D Gaussians both widths reach the same accuracy (within 0.003) and the
narrower one needs a third of the arithmetic (``benchmarks/c2st_speed.py``). Folds are
stratified, so every held-out fold holds as many rows of each sample and chance is exactly 0.5.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from inference.seeds import check_seed
from simulators.errors import ConfigError

__all__ = ["C2ST_FOLDS", "C2ST_PATIENCE", "BatchedMLP", "c2st", "default_device", "fit_classifiers"]

C2ST_FOLDS = 5
C2ST_PATIENCE = 20
"""Epochs without progress before a fold's classifier stops. 3 (the earlier default) stopped
classifiers before they learnt crescent-shaped differences: on a two-moons posterior against
an NSF reference it read 0.50-0.55 where sbi's C2ST read 0.67 and a 1-NN test 0.63; 20 (with
up to 1000 epochs) reads 0.68, as 50 does, and keeps C2ST of two exact samples at 0.50 (about 1 s
per test of 2 x 1000 draws; ``benchmarks/c2st_power.py``)."""
_VALIDATION_FRACTION = 0.1
# Validation-loss decrease (nats) that counts as progress for early stopping.
_MIN_IMPROVEMENT = 2e-3


def default_device() -> torch.device:
    """The GPU when torch sees one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check(a: np.ndarray, b: np.ndarray, folds: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim == 1:
        a, b = a[:, None], np.asarray(b, dtype=np.float64).reshape(-1, 1)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] < 2 * folds:
        raise ConfigError(
            f"c2st needs two samples of the same shape (n, n_params) with n >= {2 * folds}, "
            f"got {a.shape} and {b.shape}; draw the same number of samples from both"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ConfigError("c2st got NaN or infinite values; drop those samples first")
    return a, b


class BatchedMLP(torch.nn.Module):
    """``k`` independent MLPs ``d -> h -> h -> 1`` evaluated in one batched call."""

    def __init__(self, k: int, d: int, h: int, generator: torch.Generator) -> None:
        super().__init__()
        shapes = [(d, h), (h, h), (h, 1)]
        self.weights = torch.nn.ParameterList()
        self.biases = torch.nn.ParameterList()
        for fan_in, fan_out in shapes:
            bound = 1.0 / math.sqrt(fan_in)  # torch.nn.Linear's default initialisation range
            w = (torch.rand(k, fan_in, fan_out, generator=generator) * 2 - 1) * bound
            b = (torch.rand(k, 1, fan_out, generator=generator) * 2 - 1) * bound
            self.weights.append(torch.nn.Parameter(w))
            self.biases.append(torch.nn.Parameter(b))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits ``(k, m)`` of inputs ``(k, m, d)``."""
        for index, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = torch.baddbmm(b, z, w)
            if index < len(self.weights) - 1:
                z = torch.relu(z)
        return z.squeeze(-1)


def c2st(
    a: np.ndarray,
    b: np.ndarray,
    seed: int,
    *,
    folds: int = C2ST_FOLDS,
    batch_size: int = 4096,
    learning_rate: float = 8e-3,
    max_epochs: int = 1000,
    patience: int = C2ST_PATIENCE,
    device: str | torch.device | None = None,
) -> float:
    """Classifier two-sample test accuracy between two equally sized samples.

    Parameters
    ----------
    a : (n, n_params)
    b : (n, n_params)
        Equal sizes, so that chance level is exactly 0.5.
    seed : int
        Seeds the fold split, the initialisation and the batch order (a private generator;
        torch's global random state is not touched).
    folds : int
        Cross-validation folds; the accuracy is the mean of the held-out fold accuracies.
    batch_size, learning_rate, max_epochs, patience
        Adam's mini-batch size (capped so that an epoch has at least 4 batches) and step size,
        the epoch budget, and the epochs without a lower validation loss (by 0.002, on 10 % of
        each fold's training rows) after which a fold stops; the weights with the lowest
        validation loss are the ones scored.
    device : str or torch.device, optional
        Defaults to :func:`default_device`.

    Returns
    -------
    accuracy : float
        About 0.5 when ``a`` and ``b`` come from the same distribution, up to 1.0.

    Raises
    ------
    ConfigError
        If the shapes differ, hold fewer than ``2 * folds`` rows, or values are not finite.
    """
    a, b = _check(a, b, folds)
    generator = torch.Generator().manual_seed(check_seed(seed))
    device = torch.device(device) if device is not None else default_device()
    mean, std = a.mean(axis=0), a.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    a_t = torch.as_tensor((a - mean) / std, dtype=torch.float32)
    b_t = torch.as_tensor((b - mean) / std, dtype=torch.float32)
    n, d = a_t.shape
    per_fold = n // folds
    used = per_fold * folds
    fold_a = a_t[torch.randperm(n, generator=generator)[:used]].view(folds, per_fold, d)
    fold_b = b_t[torch.randperm(n, generator=generator)[:used]].view(folds, per_fold, d)
    data = torch.cat([fold_a, fold_b], dim=1)  # (folds, 2 * per_fold, d)
    labels = torch.cat([torch.zeros(folds, per_fold), torch.ones(folds, per_fold)], dim=1)

    # Fold j tests on block j and trains on the other blocks.
    others = torch.stack([torch.tensor([i for i in range(folds) if i != j]) for j in range(folds)])
    model = fit_classifiers(
        data[others].reshape(folds, -1, d),
        labels[others].reshape(folds, -1),
        generator,
        batch_size=batch_size,
        learning_rate=learning_rate,
        max_epochs=max_epochs,
        patience=patience,
        hidden=max(32, 5 * d),
        device=device,
    )
    with torch.no_grad():
        logits = model(data.to(device))
        correct = ((logits > 0).float() == labels.to(device)).float().mean(dim=1)
    return float(correct.mean())


def fit_classifiers(
    x: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    *,
    batch_size: int = 4096,
    learning_rate: float = 8e-3,
    max_epochs: int = 200,
    patience: int = 3,
    hidden: int | None = None,
    device: str | torch.device | None = None,
) -> BatchedMLP:
    """Train ``k`` binary MLP classifiers side by side, each with its own early stopping.

    Parameters
    ----------
    x : (k, m, d) float32
        Training inputs of each classifier.
    y : (k, m) float32
        Labels in {0, 1}.
    generator : torch.Generator
        Seeds the initialisation, the validation split and the batch order.
    batch_size, learning_rate, max_epochs, patience
        See :func:`c2st`. The last 10 % of a shuffled copy of each classifier's rows validate.
    hidden : int, optional
        Hidden units per layer; default ``10 * d``.
    device : optional
        Defaults to :func:`default_device`.

    Returns
    -------
    BatchedMLP
        In eval mode on ``device``, holding each classifier's weights of lowest validation loss.
    """
    device = torch.device(device) if device is not None else default_device()
    k, m_all, d = x.shape
    order = torch.stack([torch.randperm(m_all, generator=generator) for _ in range(k)])
    x = torch.gather(x, 1, order[..., None].expand(-1, -1, d))
    y = torch.gather(y, 1, order)
    n_val = max(1, int(_VALIDATION_FRACTION * m_all))
    val_x, val_y = x[:, :n_val].to(device), y[:, :n_val].to(device)
    fit_x, fit_y = x[:, n_val:].to(device), y[:, n_val:].to(device)
    model = BatchedMLP(k, d, hidden or 10 * d, generator).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
    best = torch.full((k,), math.inf, device=device)
    best_state = [p.detach().clone() for p in model.parameters()]
    stale = torch.zeros(k, dtype=torch.long, device=device)
    m = fit_x.shape[1]
    # at least 4 steps per epoch, so that small samples still get several updates per check
    batch_size = min(batch_size, max(128, m // 4))
    for _ in range(max_epochs):
        shuffle = torch.randperm(m, generator=generator).to(device)
        for start in range(0, m, batch_size):
            rows = shuffle[start : start + batch_size]
            optimiser.zero_grad(set_to_none=True)
            # summed over classifiers so each gets the gradient of its own mean loss
            loss_fn(model(fit_x[:, rows]), fit_y[:, rows]).mean(dim=1).sum().backward()
            optimiser.step()
        with torch.no_grad():
            val_loss = loss_fn(model(val_x), val_y).mean(dim=1)
            improved = val_loss < best - _MIN_IMPROVEMENT
            best = torch.where(improved, val_loss, best)
            stale = torch.where(improved, torch.zeros_like(stale), stale + 1)
            for saved, param in zip(best_state, model.parameters(), strict=True):
                mask = improved.view(-1, *([1] * (param.dim() - 1)))
                saved.copy_(torch.where(mask, param, saved))
        if bool((stale >= patience).all()):
            break
    with torch.no_grad():
        for saved, param in zip(best_state, model.parameters(), strict=True):
            param.copy_(saved)
    return model.eval()
