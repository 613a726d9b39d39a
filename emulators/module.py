"""The trainable conditional density ``q(x | theta)`` behind every emulator.

A zuko normalizing flow models z-scored outputs given z-scored parameters. The z-scoring
statistics are buffers of the module, so they travel with its state dict; they are set once from
the training split (:meth:`ConditionalDensityModule.set_normalisation`) before training starts.
"""

from __future__ import annotations

import warnings
from typing import Any

import lightning
import numpy as np
import torch
import zuko
from torch import Tensor

from emulators.fidelity import EmulatorSpec
from simulators.errors import ConfigError

__all__ = ["ConditionalDensityModule"]

_FAMILIES = {"maf": zuko.flows.MAF, "nsf": zuko.flows.NSF}


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
        self.flow = _FAMILIES[self.spec.family](
            features=self.x_dim,
            context=self.theta_dim,
            transforms=self.spec.transforms,
            hidden_features=(self.spec.hidden_features,) * self.spec.hidden_layers,
        )
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
        for name, values in (("theta", theta), ("x", x)):
            mean, std = values.mean(dim=0), values.std(dim=0)
            constant = ~(std > 0)
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

    def _nll(self, theta: Tensor, x: Tensor) -> Tensor:
        """Mean negative log-likelihood of z-scored ``x`` given z-scored ``theta``."""
        z_x = (x - self.x_mean) / self.x_std
        return -self.flow(self._zscore_theta(theta)).log_prob(z_x).mean()

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        theta, x = batch
        loss = self._nll(theta, x)
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        theta, x = batch
        loss = self._nll(theta, x)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(x))
        return loss

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
        return self.flow(self._zscore_theta(theta)).log_prob(z_x) - torch.log(self.x_std).sum()

    def sample_from_noise(self, theta: Tensor, z: Tensor) -> Tensor:
        """Map base noise to outputs, so sampling is a deterministic function of ``z``.

        Parameters
        ----------
        theta : (batch, theta_dim)
        z : (batch, x_dim)
            Standard normal draws of the flow's base distribution.

        Returns
        -------
        x : (batch, x_dim)
            In the original units of ``x``.
        """
        theta, z = self._as_input(theta), self._as_input(z)
        z_x = self.flow(self._zscore_theta(theta)).transform.inv(z)
        return z_x * self.x_std + self.x_mean

    def _as_input(self, values: Tensor | np.ndarray) -> Tensor:
        return torch.as_tensor(values, dtype=self.x_mean.dtype, device=self.x_mean.device)
