"""The trainable conditional density ``q(x | theta)`` behind every emulator.

A zuko normalizing flow (``maf``: autoregressive affine; ``nsf``: rational-quadratic splines in
coupling layers, as sbi's ``nsf``, see :mod:`emulators.splines`), a mixture density network of
diagonal Gaussians (``mdn``) or a heteroscedastic Gaussian (``gaussian``, one component) models
z-scored outputs given z-scored parameters. Sampling is a deterministic function of standard
normal base noise (:meth:`ConditionalDensityModule.sample_from_noise`), of ``noise_dim`` columns.
The z-scoring statistics are buffers of the module, so they travel with its state dict; they are
set once from the training split (:meth:`ConditionalDensityModule.set_normalisation`) before
training starts.
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning
import numpy as np
import torch
import zuko
from torch import Tensor, nn

from emulators.fidelity import FLOW_FAMILIES, EmulatorSpec
from emulators.splines import neural_spline_flow
from simulators.errors import ConfigError

__all__ = ["ConditionalDensityModule", "MixtureDensity"]

# nsf: coupling splines (emulators/splines.py). Inverting autoregressive splines takes one
# network pass per output and made NSF sampling only ~175x faster than Lorenz-96.
_FLOWS = {"maf": zuko.flows.MAF, "nsf": neural_spline_flow}

Batch = tuple[Tensor, Tensor]
Batches = Batch | list[Batch]
"""One ``(theta, x)`` batch, or a list of them (``StoreDataModule(batches_per_step=k)``)."""


def _batches(batch: Batches) -> list[Batch]:
    return [batch] if isinstance(batch[0], Tensor) else list(batch)


_LOG_2PI = float(np.log(2 * np.pi))


class MixtureDensity(nn.Module):
    """A mixture of ``components`` diagonal Gaussians whose parameters an MLP gives from theta.

    With one component it is a heteroscedastic Gaussian: mean and log standard deviation of
    each output as functions of ``theta``.

    Parameters
    ----------
    features, context : int
        Dimensions of ``x`` and ``theta``.
    components : int
    hidden_features, hidden_layers : int
        Width and depth of the MLP.
    """

    def __init__(
        self, features: int, context: int, components: int, hidden_features: int, hidden_layers: int
    ) -> None:
        super().__init__()
        self.features, self.components = features, components
        layers: list[nn.Module] = []
        width = context
        for _ in range(hidden_layers):
            layers += [nn.Linear(width, hidden_features), nn.ReLU()]
            width = hidden_features
        layers.append(nn.Linear(width, components * (1 + 2 * features)))
        self.net = nn.Sequential(*layers)

    def parameters_at(self, context: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Log weights (batch, K), means (batch, K, D) and log stds (batch, K, D)."""
        k, d = self.components, self.features
        out = self.net(context)
        logits, rest = out[:, :k], out[:, k:].reshape(-1, k, 2, d)
        # bounded log-std: keeps early training away from degenerate components
        log_std = 7.0 * torch.tanh(rest[:, :, 1] / 7.0)
        return torch.log_softmax(logits, dim=-1), rest[:, :, 0], log_std

    def log_prob(self, x: Tensor, context: Tensor) -> Tensor:
        """``log q(x | context)``, shape (batch,)."""
        log_w, mean, log_std = self.parameters_at(context)
        z = (x[:, None, :] - mean) / torch.exp(log_std)
        per_component = -0.5 * (z**2 + _LOG_2PI).sum(-1) - log_std.sum(-1)
        return torch.logsumexp(log_w + per_component, dim=-1)

    def sample_from_noise(self, context: Tensor, noise: Tensor) -> Tensor:
        """Outputs from standard normal noise (batch, D + 1 if K > 1 else D).

        The last column (with several components) picks the component through its normal CDF.
        """
        log_w, mean, log_std = self.parameters_at(context)
        if self.components == 1:
            return mean[:, 0] + torch.exp(log_std[:, 0]) * noise
        u = 0.5 * (1 + torch.erf(noise[:, -1:] / np.sqrt(2.0)))
        cumulative = torch.cumsum(torch.exp(log_w), dim=-1)
        pick = torch.clamp((u > cumulative).sum(-1), max=self.components - 1)
        rows = torch.arange(len(context), device=context.device)
        return mean[rows, pick] + torch.exp(log_std[rows, pick]) * noise[:, :-1]


class ConditionalDensityModule(lightning.LightningModule):
    """A zuko flow ``q(x | theta)`` trained by maximum likelihood on z-scored pairs.

    Parameters
    ----------
    spec : dict
        An :class:`~emulators.fidelity.EmulatorSpec` as a dict (``spec.model_dump()``); kept as
        a plain dict so Lightning can record it as a hyperparameter.
    theta_dim : int
        Number of parameters (columns of ``theta``).
    x_dim : int
        Number of outputs (columns of ``x``).
    """

    def __init__(self, spec: dict[str, Any], theta_dim: int, x_dim: int) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.spec = EmulatorSpec.model_validate(spec)
        self.theta_dim, self.x_dim = int(theta_dim), int(x_dim)
        if self.theta_dim < 1 or self.x_dim < 1:
            raise ConfigError(
                f"an emulator needs theta_dim >= 1 and x_dim >= 1, got theta_dim={theta_dim}, "
                f"x_dim={x_dim}; check the store's param and output coordinates"
            )
        if self.spec.family in FLOW_FAMILIES:
            self.flow = _FLOWS[self.spec.family](
                features=self.x_dim,
                context=self.theta_dim,
                transforms=self.spec.transforms,
                hidden_features=(self.spec.hidden_features,) * self.spec.hidden_layers,
            )
        else:
            self.mixture = MixtureDensity(
                self.x_dim,
                self.theta_dim,
                self.spec.n_components,
                self.spec.hidden_features,
                self.spec.hidden_layers,
            )
        self._sums: dict[str, tuple[Tensor | float, int]] = {}
        # Adam steps are written out in training_step, one per batch, and a Lightning step may
        # carry several batches (StoreDataModule's batches_per_step): Lightning's hooks cost
        # ~0.4 ms per step, >10 % of a small model's step (benchmarks/emulator_lightning_*).
        self.automatic_optimization = False
        self.register_buffer("theta_mean", torch.zeros(self.theta_dim))
        self.register_buffer("theta_std", torch.ones(self.theta_dim))
        self.register_buffer("x_mean", torch.zeros(self.x_dim))
        self.register_buffer("x_std", torch.ones(self.x_dim))

    def set_normalisation(self, theta: Tensor | np.ndarray, x: Tensor | np.ndarray) -> None:
        """Set the z-scoring statistics from the training split (never from validation rows).

        A column with zero spread keeps unit scale (with a warning): the flow cannot model a
        constant output well, which usually means the simulator output should be dropped.

        Parameters
        ----------
        theta : (n_train, theta_dim)
        x : (n_train, x_dim)
        """
        theta = torch.as_tensor(theta, dtype=torch.float64)
        x = torch.as_tensor(x, dtype=torch.float64)
        shapes_ok = (
            theta.ndim == 2
            and x.ndim == 2
            and theta.shape[1:] == (self.theta_dim,)
            and x.shape[1:] == (self.x_dim,)
            and len(theta) == len(x) >= 2
        )
        if not shapes_ok:
            raise ConfigError(
                f"set_normalisation needs theta (n, {self.theta_dim}) and x (n, {self.x_dim}) "
                f"with the same n >= 2, got {tuple(theta.shape)} and {tuple(x.shape)}"
            )
        self.set_statistics(
            {
                "theta_mean": theta.mean(dim=0),
                "theta_std": theta.std(dim=0),
                "x_mean": x.mean(dim=0),
                "x_std": x.std(dim=0),
            }
        )

    def set_statistics(self, statistics: dict[str, np.ndarray | Tensor]) -> None:
        """Set the z-scoring from precomputed training-split statistics.

        Parameters
        ----------
        statistics : dict
            ``theta_mean``, ``theta_std`` (theta_dim,) and ``x_mean``, ``x_std`` (x_dim,), e.g.
            :attr:`emulators.data.StoreDataModule.statistics`. A zero or non-finite spread keeps
            unit scale (with a warning).
        """
        for name in ("theta", "x"):
            mean = torch.as_tensor(statistics[f"{name}_mean"], dtype=torch.float64)
            std = torch.as_tensor(statistics[f"{name}_std"], dtype=torch.float64)
            constant = ~(std > 0) | ~torch.isfinite(std)
            if constant.any():
                warnings.warn(
                    f"{name} columns {constant.nonzero().flatten().tolist()} are constant in the "
                    "training split; they are left unscaled",
                    RuntimeWarning,
                    stacklevel=2,
                )
                std = torch.where(constant, torch.ones_like(std), std)
            getattr(self, f"{name}_mean").copy_(mean)
            getattr(self, f"{name}_std").copy_(std)

    def _zscore_theta(self, theta: Tensor) -> Tensor:
        return (theta - self.theta_mean) / self.theta_std

    @property
    def noise_dim(self) -> int:
        """Columns of base noise :meth:`sample_from_noise` needs per row."""
        return self.x_dim + (1 if self.spec.n_components > 1 else 0)

    def _log_prob_z(self, z_x: Tensor, z_theta: Tensor) -> Tensor:
        if self.spec.family in FLOW_FAMILIES:
            return self.flow(z_theta).log_prob(z_x)
        return self.mixture.log_prob(z_x, z_theta)

    def _nll(self, theta: Tensor, x: Tensor) -> Tensor:
        """Mean negative log-likelihood of z-scored ``x`` given z-scored ``theta``."""
        z_x = (x - self.x_mean) / self.x_std
        return -self._log_prob_z(z_x, self._zscore_theta(theta)).mean()

    # Losses are summed here and logged once per epoch: ``self.log`` on every step was the
    # largest part of Lightning's overhead over a plain loop (benchmarks/emulator_lightning_*).
    def training_step(self, batch: Batches, batch_idx: int) -> Tensor:
        # The bare torch optimiser and backward: Lightning's wrappers of both (precision and
        # strategy hooks, unused here: 32-bit, one device) cost ~7 % of a small model's step.
        optimiser = self.optimizers(use_pl_optimizer=False)
        for theta, x in _batches(batch):
            loss = self._nll(theta, x)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            self._accumulate("train", loss, len(x))
        return loss

    def validation_step(self, batch: Batches, batch_idx: int) -> Tensor:
        for theta, x in _batches(batch):
            loss = self._nll(theta, x)
            self._accumulate("val", loss, len(x))
        return loss

    def _accumulate(self, split: str, loss: Tensor, rows: int) -> None:
        total, count = self._sums.get(split, (0.0, 0))
        self._sums[split] = (total + loss.detach() * rows, count + rows)

    def _log_mean(self, split: str) -> None:
        total, count = self._sums.pop(split, (0.0, 0))
        if count:
            self.log(f"{split}_loss", total / count, on_step=False, on_epoch=True)

    def on_train_epoch_end(self) -> None:
        self._log_mean("train")

    def on_validation_epoch_end(self) -> None:
        self._log_mean("val")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.spec.learning_rate)

    def log_prob(self, x: Tensor, theta: Tensor) -> Tensor:
        """Log density ``log q(x | theta)`` in the original units of ``x``.

        Includes the Jacobian of the z-scoring, ``-sum(log x_std)``, so it is comparable with
        the simulator's own likelihood.

        Parameters
        ----------
        x : (batch, x_dim)
        theta : (batch, theta_dim)

        Returns
        -------
        log_prob : (batch,)
        """
        theta, x = self._as_input(theta), self._as_input(x)
        z_x = (x - self.x_mean) / self.x_std
        return self._log_prob_z(z_x, self._zscore_theta(theta)) - torch.log(self.x_std).sum()

    def sample_from_noise(self, theta: Tensor, z: Tensor) -> Tensor:
        """Map base noise to outputs, so sampling is a deterministic function of ``z``.

        Parameters
        ----------
        theta : (batch, theta_dim)
        z : (batch, noise_dim)
            Standard normal draws (the flow's base distribution; for a mixture of several
            components one more column picks the component).

        Returns
        -------
        x : (batch, x_dim)
            In the original units of ``x``.
        """
        theta, z = self._as_input(theta), self._as_input(z)
        z_theta = self._zscore_theta(theta)
        if self.spec.family in FLOW_FAMILIES:
            z_x = self.flow(z_theta).transform.inv(z)
        else:
            z_x = self.mixture.sample_from_noise(z_theta, z)
        return z_x * self.x_std + self.x_mean

    def _as_input(self, values: Tensor | np.ndarray) -> Tensor:
        return torch.as_tensor(values, dtype=self.x_mean.dtype, device=self.x_mean.device)
