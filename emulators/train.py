"""Train one emulator for one fidelity level and write it as a safe checkpoint.

The checkpoint ``emulator.pt`` holds plain types and tensors only, so it loads with
``torch.load(..., weights_only=True)`` and never runs pickled code::

    {
        "format": "emustudy-emulator/1",
        "spec": FidelityLevel as JSON,
        "theta_dim": int, "x_dim": int,
        "state_dict": flow weights and z-scoring buffers (best validation loss),
        "simulator": {"name", "settings", "prior", "output_names"},   # what it emulates
        "training": {"epochs", "best_epoch", "best_val_loss", "n_train", "n_val", "seconds",
                     "seed", "store"},
    }
"""

from __future__ import annotations

import copy
import logging
import math
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping
from lightning.pytorch.loggers import CSVLogger

from emulators.data import StoreDataModule
from emulators.fidelity import FidelityLevel
from emulators.module import ConditionalDensityModule
from simulators.errors import EmustudyError
from simulators.prior import Prior
from simulators.store import open_store

__all__ = ["CHECKPOINT_FORMAT", "CHECKPOINT_NAME", "train_emulator"]

CHECKPOINT_FORMAT = "emustudy-emulator/1"
CHECKPOINT_NAME = "emulator.pt"


class _BestWeights(Callback):
    """Keep a CPU copy of the weights with the lowest validation loss seen so far."""

    def __init__(self) -> None:
        self.loss = math.inf
        self.epoch = -1
        self.state_dict: dict[str, torch.Tensor] | None = None

    def on_validation_end(
        self, trainer: lightning.Trainer, pl_module: lightning.LightningModule
    ) -> None:
        if trainer.sanity_checking:
            return
        loss = float(trainer.callback_metrics["val_loss"])
        if loss < self.loss:
            self.loss, self.epoch = loss, trainer.current_epoch
            self.state_dict = {
                key: value.detach().to("cpu", copy=True)
                for key, value in pl_module.state_dict().items()
            }


@contextmanager
def _quiet_lightning(quiet: bool) -> Iterator[None]:
    """Silence Lightning's info lines ("`Trainer.fit` stopped ...") when progress is off."""
    logger = logging.getLogger("lightning.pytorch")
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def train_emulator(
    store: Path, level: FidelityLevel, out_dir: Path, *, seed: int = 0, progress: bool = True
) -> Path:
    """Fit the emulator of ``level`` to the valid pairs of ``store``.

    Parameters
    ----------
    store : Path
        A finished simulation store of the simulator being emulated.
    level : FidelityLevel
        Which emulator to build and how long to train it.
    out_dir : Path
        Receives ``emulator.pt`` and the CSV training log (``logs/version_*/metrics.csv``).
    seed : int
        Seeds the weights, the train/validation split and the batch order.
    progress : bool
        Show Lightning's progress bar.

    Returns
    -------
    path : Path
        The checkpoint ``out_dir / "emulator.pt"``, written atomically.

    Raises
    ------
    StoreError
        If the store is missing, unfinished or has too few valid rows.
    ConfigError
        If the level asks for more rows than the store holds.
    EmustudyError
        If training produced no finite validation loss.
    """
    store, out_dir = Path(store), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = level.emulator
    lightning.seed_everything(seed, workers=True, verbose=False)
    data = StoreDataModule(store, spec, seed=seed)
    data.setup("fit")
    module = ConditionalDensityModule(spec.model_dump(mode="json"), data.theta_dim, data.x_dim)
    module.set_normalisation(data.theta_train, data.x_train)
    best = _BestWeights()
    with warnings.catch_warnings(), _quiet_lightning(not progress):
        # Batches are cut in-process by tensor indexing; worker processes would only add cost.
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        # Training is one process on one device; it is never meant to be launched with srun.
        warnings.filterwarnings("ignore", message=r"The `srun` command is available")
        # Lightning 2.6 calls a torch 2.13 pytree API that torch deprecated; nothing to act on.
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
        trainer = lightning.Trainer(
            max_epochs=spec.max_epochs,
            accelerator="auto",
            devices=1,
            callbacks=[EarlyStopping(monitor="val_loss", patience=spec.patience), best],
            logger=CSVLogger(out_dir, name="logs"),
            enable_checkpointing=False,
            enable_progress_bar=progress,
            enable_model_summary=False,
            deterministic=True,
            num_sanity_val_steps=0,
            log_every_n_steps=1,  # nothing is logged per step; this only silences a size warning
        )
        began = time.perf_counter()
        trainer.fit(module, datamodule=data)
    seconds = time.perf_counter() - began
    if best.state_dict is None:
        raise EmustudyError(
            f"training {level.name!r} on {store} never reached a finite validation loss; "
            "lower learning_rate or check the store for extreme values"
        )
    module.load_state_dict(best.state_dict)
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "spec": level.model_dump(mode="json"),
        "theta_dim": data.theta_dim,
        "x_dim": data.x_dim,
        "state_dict": {key: value.cpu() for key, value in module.state_dict().items()},
        "simulator": _simulator_info(store),
        "training": {
            "epochs": int(trainer.current_epoch),
            "best_epoch": int(best.epoch),
            "best_val_loss": float(best.loss),
            "n_train": len(data.theta_train),
            "n_val": len(data.theta_val),
            "seconds": float(seconds),
            "seed": int(seed),
            "store": str(store.resolve()),
        },
    }
    return _save_atomically(checkpoint, out_dir / CHECKPOINT_NAME)


def _simulator_info(store: Path) -> dict[str, Any]:
    """What the store says about the simulator that made it (plain JSON types)."""
    ds = open_store(store)
    return {
        "name": str(ds.attrs["simulator"]),
        "settings": copy.deepcopy(dict(ds.attrs["simulator_settings"])),
        "prior": Prior.model_validate(ds.attrs["prior"]).model_dump(mode="json"),
        "output_names": [str(name) for name in ds["output"].values],
    }


def _save_atomically(checkpoint: dict[str, Any], path: Path) -> Path:
    """``torch.save`` into a temporary file beside ``path``, then rename it into place."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(checkpoint, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
