"""Train one emulator for one fidelity level and write it as a safe checkpoint.

Training streams the store by chunks (:class:`~emulators.data.StoreDataModule`), logs to CSV
(and TensorBoard on request), and saves Lightning's ``checkpoints/last.ckpt`` after every epoch:
a killed run called again with the same level, seed and store resumes from that epoch and ends
with the same weights as an uninterrupted run. Resume checkpoints are checked against their
CRC-32s and read with ``weights_only=True`` (no pickled code runs), and only if the sidecar
``checkpoints/run.json`` says they belong to the same level, seed and store; an unreadable
``last.ckpt`` falls back to ``previous.ckpt`` (the epoch before) with a warning, and none
readable is an error. The folder is removed once ``emulator.pt`` is written.

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
import json
import logging
import math
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint, EarlyStopping
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger
from lightning.pytorch.plugins import TorchCheckpointIO

from emulators.data import DEFAULT_BUFFER_ROWS, StoreDataModule
from emulators.fidelity import FidelityLevel
from emulators.memory import large_allocations_mapped
from emulators.module import ConditionalDensityModule
from simulators.errors import EmustudyError
from simulators.integrity import verify_torch_file
from simulators.prior import Prior
from simulators.store import open_store

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_NAME",
    "RESUME_FOLDER",
    "make_trainer",
    "train_emulator",
    "verify_torch_file",
]

CHECKPOINT_FORMAT = "emustudy-emulator/1"
CHECKPOINT_NAME = "emulator.pt"
RESUME_FOLDER = "checkpoints"
PREVIOUS_CHECKPOINT = "previous.ckpt"
BATCHES_PER_STEP, ROWS_PER_STEP = 8, 4096
"""Up to 8 batches, of at most 4,096 rows together, per Lightning step: amortises Lightning's
~0.4 ms of hooks per step where steps are short, without holding many large batches at once."""


def batches_per_step(batch_size: int) -> int:
    """How many batches of ``batch_size`` rows one Lightning step of ``train_emulator`` runs."""
    return max(1, min(BATCHES_PER_STEP, ROWS_PER_STEP // batch_size))


class _BestWeights(Callback):
    """Keep a CPU copy of the weights with the lowest validation loss seen so far."""

    def __init__(self) -> None:
        self.loss = math.inf
        self.epoch = -1
        self.state_dict_: dict[str, torch.Tensor] | None = None

    def on_validation_end(
        self, trainer: lightning.Trainer, pl_module: lightning.LightningModule
    ) -> None:
        if trainer.sanity_checking:
            return
        loss = float(trainer.callback_metrics["val_loss"])
        if loss < self.loss:
            self.loss, self.epoch = loss, trainer.current_epoch
            self.state_dict_ = {
                key: value.detach().to("cpu", copy=True)
                for key, value in pl_module.state_dict().items()
            }

    def state_dict(self) -> dict[str, Any]:
        return {"loss": self.loss, "epoch": self.epoch, "weights": self.state_dict_}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.loss, self.epoch = float(state_dict["loss"]), int(state_dict["epoch"])
        self.state_dict_ = state_dict["weights"]


class _AtomicCheckpointIO(TorchCheckpointIO):
    """Write a checkpoint to a temporary file beside its path, then rename it there.

    Lightning's writer stages the file in the system's temporary folder and moves it: a copy,
    not atomic, when that folder is on another file system, and a stray file when killed.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        save_atomically(checkpoint, Path(path))


class _ResumePoint(Checkpoint):
    """Save the whole training state to ``last.ckpt`` at the end of every epoch, atomically.

    The checkpoint it replaces becomes ``previous.ckpt``, the fall-back when ``last.ckpt``
    turns out unreadable. Lightning's ``ModelCheckpoint`` with ``save_top_k=0`` writes
    ``last.ckpt`` only when training ends, and with ``save_top_k=1`` writes two files per epoch.

    It is a ``Checkpoint`` so that Lightning calls it after ``EarlyStopping`` has judged the
    epoch: as a plain callback it saved the state before, so a resumed run's early stopping was
    one epoch behind, and the first epoch's checkpoint held ``best_score = inf``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_train_epoch_end(
        self, trainer: lightning.Trainer, pl_module: lightning.LightningModule
    ) -> None:
        if not trainer.sanity_checking:
            if self.path.exists():
                os.replace(self.path, self.path.with_name(PREVIOUS_CHECKPOINT))
            trainer.save_checkpoint(self.path)  # _AtomicCheckpointIO writes atomically


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


def make_trainer(
    spec_max_epochs: int,
    *,
    callbacks: list[Callback],
    logger: Logger | list[Logger] | bool,
    progress: bool,
) -> lightning.Trainer:
    """The Trainer every emulator uses (also timed by ``benchmarks/emulator_lightning_overhead``).

    ``accelerator="auto"`` trains on a GPU when one exists. Nothing is logged per step, and the
    model summary and sanity validation are off: each would add overhead to small models.
    """
    return lightning.Trainer(
        max_epochs=spec_max_epochs,
        accelerator="auto",
        devices=1,
        callbacks=callbacks,
        logger=logger,
        # Only our own resume point: with checkpointing on and none given, Lightning adds its own.
        enable_checkpointing=any(isinstance(c, Checkpoint) for c in callbacks),
        enable_progress_bar=progress,
        enable_model_summary=False,
        deterministic=True,
        num_sanity_val_steps=0,
        log_every_n_steps=1_000_000,  # nothing is logged per step: skip the per-step check
        plugins=[_AtomicCheckpointIO()],
    )


def train_emulator(
    store: Path,
    level: FidelityLevel,
    out_dir: Path,
    *,
    seed: int = 0,
    progress: bool = True,
    buffer_rows: int = DEFAULT_BUFFER_ROWS,
    tensorboard: bool = False,
) -> Path:
    """Fit the emulator of ``level`` to the valid pairs of ``store``, resuming a killed run.

    Parameters
    ----------
    store : Path
        A finished simulation store of the simulator being emulated.
    level : FidelityLevel
        Which emulator to build and how long to train it.
    out_dir : Path
        Receives ``emulator.pt``, the CSV training log (``logs/version_*/metrics.csv``) and,
        while training, the resume checkpoint ``checkpoints/last.ckpt``.
    seed : int
        Seeds the weights, the train/validation split and the batch order.
    progress : bool
        Show Lightning's progress bar.
    buffer_rows : int
        Most rows of training data held in memory at once.
    tensorboard : bool
        Also write TensorBoard logs under ``out_dir / "tensorboard"``.

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
    # Store chunks are read and freed while the store streams: mmap them, so freed ones go back
    # to the OS (emulators/memory.py); batches (below 4 MiB) stay on the reused heap.
    with large_allocations_mapped(4 * 2**20):
        return _train_emulator(
            store,
            level,
            out_dir,
            seed=seed,
            progress=progress,
            buffer_rows=buffer_rows,
            tensorboard=tensorboard,
        )


def _train_emulator(
    store: Path,
    level: FidelityLevel,
    out_dir: Path,
    *,
    seed: int,
    progress: bool,
    buffer_rows: int,
    tensorboard: bool,
) -> Path:
    store, out_dir = Path(store), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = level.emulator
    lightning.seed_everything(seed, workers=True, verbose=False)
    data = StoreDataModule(
        store,
        spec,
        seed=seed,
        buffer_rows=buffer_rows,
        batches_per_step=batches_per_step(spec.batch_size),
    )
    data.setup("fit")
    module = ConditionalDensityModule(spec.model_dump(mode="json"), data.theta_dim, data.x_dim)
    module.set_statistics(data.statistics)
    best = _BestWeights()
    resume_dir = out_dir / RESUME_FOLDER
    last = _resume_point(resume_dir, level, seed, store)
    loggers: list[Logger] = [CSVLogger(out_dir, name="logs")]
    if tensorboard:
        loggers.append(TensorBoardLogger(out_dir, name="tensorboard"))
    saver = _ResumePoint(resume_dir / "last.ckpt")
    with warnings.catch_warnings(), _quiet_lightning(not progress):
        # Batches are cut in-process by tensor slicing; worker processes would only add cost.
        warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
        # Training is one process on one device; it is never meant to be launched with srun.
        warnings.filterwarnings("ignore", message=r"The `srun` command is available")
        # Lightning 2.6 calls a torch 2.13 pytree API that torch deprecated; nothing to act on.
        warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
        # The streamed loader has no length known to Lightning in advance; that is intended.
        warnings.filterwarnings("ignore", message=r".*IterableDataset.*")
        trainer = make_trainer(
            spec.max_epochs,
            callbacks=[EarlyStopping(monitor="val_loss", patience=spec.patience), best, saver],
            logger=loggers,
            progress=progress,
        )
        began = time.perf_counter()
        trainer.fit(module, datamodule=data, ckpt_path=last, weights_only=True)
    seconds = time.perf_counter() - began
    if best.state_dict_ is None:
        raise EmustudyError(
            f"training {level.name!r} on {store} never reached a finite validation loss; "
            "lower learning_rate or check the store for extreme values"
        )
    module.load_state_dict(best.state_dict_)
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
            "n_train": data.n_train,
            "n_val": data.n_val,
            "excluded_rows": int(sum(data.counts.values()) - data.counts["ok"]),
            "seconds": float(seconds),
            "resumed_from": last,
            "seed": int(seed),
            "store": str(store.resolve()),
        },
    }
    path = save_atomically(checkpoint, out_dir / CHECKPOINT_NAME)
    shutil.rmtree(resume_dir, ignore_errors=True)
    return path


def _resume_point(folder: Path, level: FidelityLevel, seed: int, store: Path) -> str | None:
    """The newest readable checkpoint of a killed run of this very level, seed and store.

    ``last.ckpt`` is used when it reads back whole (plain data only, finite weights); otherwise
    ``previous.ckpt``, with a warning naming the bad file. A resume folder of another run (a
    changed level or seed) is cleared: its checkpoints are intermediates of training, not
    results.

    Raises
    ------
    EmustudyError
        If checkpoints of this run exist but none is readable: training is not restarted from
        scratch behind the user's back.
    """
    run = {"level": level.model_dump(mode="json"), "seed": int(seed), "store": str(store.resolve())}
    sidecar = folder / "run.json"
    try:
        same = json.loads(sidecar.read_text()) == run
    except (OSError, ValueError):
        same = False
    candidates = [folder / "last.ckpt", folder / PREVIOUS_CHECKPOINT]
    if same and any(path.is_file() for path in candidates):
        return str(_readable_checkpoint([path for path in candidates if path.is_file()], folder))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".run.", suffix=".tmp")
    with os.fdopen(handle, "w") as stream:
        json.dump(run, stream)
    os.replace(temporary, sidecar)
    return None


def _readable_checkpoint(candidates: list[Path], folder: Path) -> Path:
    """The first of ``candidates`` that loads as plain data with finite tensors."""
    problems = []
    for path in candidates:
        try:
            verify_torch_file(path)
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or "state_dict" not in state or "epoch" not in state:
                raise ValueError("it is not a Lightning checkpoint (no state_dict or epoch)")
            if not all(torch.isfinite(t).all() for t in _float_tensors(state)):
                raise ValueError("it holds NaN or infinite weights")
        except Exception as err:  # torch raises several types for truncated or unsafe files
            reason = str(err).split("WeightsUnpickler error:", 1)[-1].strip().split("\n")[0]
            problems.append(f"{path} ({type(err).__name__}: {reason[:200]})")
            continue
        if problems:
            warnings.warn(
                f"resume checkpoint {problems[0]} is unreadable; resuming from {path} instead",
                stacklevel=3,
            )
        return path
    raise EmustudyError(
        f"no readable resume checkpoint in {folder}: {'; '.join(problems)}. Nothing was "
        f"changed; delete {folder} to train this level from the beginning."
    )


def _float_tensors(value: Any) -> Iterator[torch.Tensor]:
    """Every floating-point tensor inside nested dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        if value.is_floating_point():
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _float_tensors(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _float_tensors(item)


def _simulator_info(store: Path) -> dict[str, Any]:
    """What the store says about the simulator that made it (plain JSON types)."""
    ds = open_store(store)
    return {
        "name": str(ds.attrs["simulator"]),
        "settings": copy.deepcopy(dict(ds.attrs["simulator_settings"])),
        "prior": Prior.model_validate(ds.attrs["prior"]).model_dump(mode="json"),
        "output_names": [str(name) for name in ds["output"].values],
    }


def save_atomically(checkpoint: dict[str, Any], path: Path) -> Path:
    """``torch.save`` plain data beside ``path`` in a temporary file, then rename it there."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(checkpoint, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
