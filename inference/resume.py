"""Resumable training of sbi's trainers (NPE, NLE, NRE): the whole training state saved as it goes.

sbi 0.27 keeps the state of a trainer's ``train`` (network, Adam's moments, epoch counter,
last and best validation loss, best weights, epochs since the last improvement, train/validation
split, per-epoch summaries) and continues it with ``resume_training=True``, but only within one
process. :func:`resumable` makes a subclass of any sbi trainer that saves that state, with
torch's random state, to a :class:`StateFolder` after epochs, and whose ``restore`` puts it back
into a fresh trainer: a run killed at any point and started again continues from its last
saved epoch and ends with the very weights of a run never interrupted (same machine and
thread count).

Training in slices of epochs (``max_num_epochs`` raised, ``resume_training=True``) would not do:
at the end of each slice sbi reloads the best weights and scores the last epoch a second time, so
a sliced run drifts away from an uninterrupted one.

A state file (format ``emustudy-npe-training/1``) is one ``torch.save`` of plain values and
tensors, read with ``torch.load(..., weights_only=True)``: a pickled object is refused, never run.
This module is the one place that reads and writes sbi's private trainer fields (sbi is pinned to
0.27; :func:`resumable` checks that the fields it needs exist)::

    format                  str    "emustudy-npe-training/1"
    fingerprint             str    digest of data, prior, settings and seed (training_fingerprint)
    finished                bool   training ended; ``net`` holds the weights it kept
    seconds                 float  training time so far, over all runs
    epoch                   int    epochs done
    net, best_net           dict   the estimator's current and best state dicts
    optimizer               dict   Adam's state dict
    val_loss, best_val_loss float  last and best mean validation loss
    epochs_since_improvement int
    train_indices, val_indices     int64 tensors: the train/validation split
    summary                 dict   sbi's per-epoch lists (losses, durations)
    rng                     uint8 tensor: torch's CPU generator state
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import warnings
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.optim import Adam

from inference.checkpoint import verify_torch_file
from inference.errors import ResultFileError
from inference.settings import NPESettings
from simulators.prior import Prior

__all__ = [
    "TRAINING_FORMAT",
    "StateFolder",
    "resumable",
    "training_fingerprint",
]

TRAINING_FORMAT = "emustudy-npe-training/1"
_KEYS = (
    "format",
    "fingerprint",
    "finished",
    "seconds",
    "epoch",
    "net",
    "best_net",
    "optimizer",
    "val_loss",
    "best_val_loss",
    "epochs_since_improvement",
    "train_indices",
    "val_indices",
    "summary",
    "rng",
)


def training_fingerprint(
    theta: np.ndarray | torch.Tensor,
    x: np.ndarray | torch.Tensor,
    prior: Prior,
    settings: NPESettings,
    seed: int,
    method: str = "npe",
) -> str:
    """Digest of everything a training result depends on.

    Parameters
    ----------
    theta : (n, n_params)
    x : (n, n_outputs)
        Digested as the float32 values training uses.
    prior, settings, seed
        As given to the method's ``train``.
    method : str
        The inference method's registered name.

    Returns
    -------
    fingerprint : str
        32 hexadecimal digits.
    """
    digest = hashlib.sha256(TRAINING_FORMAT.encode())
    for array in (theta, x):
        values = np.ascontiguousarray(np.asarray(array, dtype=np.float64), dtype=np.float32)
        digest.update(json.dumps([str(values.dtype), list(values.shape)]).encode())
        digest.update(values.tobytes())
    described = [prior.model_dump(mode="json"), settings.model_dump(mode="json"), int(seed)]
    if method != "npe":  # NPE fingerprints stay what they were before methods existed
        described.append(method)
    digest.update(json.dumps(described, sort_keys=True).encode())
    return digest.hexdigest()[:32]


def _tensors(value: Any) -> list[torch.Tensor]:
    """Every tensor inside nested dicts and lists."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    if isinstance(value, (list, tuple)):
        return [t for item in value for t in _tensors(item)]
    return []


def _read_state(path: Path) -> dict[str, Any]:
    """A checked state file; ``ValueError`` saying what is wrong with it otherwise."""
    try:
        verify_torch_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated, garbled or unsafe files
        reason = str(err).split("WeightsUnpickler error:", 1)[-1].strip().split("\n")[0][:200]
        raise ValueError(
            f"it is not a readable plain-data torch file ({type(err).__name__}: {reason}); "
            "pickled objects are refused, never run"
        ) from err
    found = state.get("format") if isinstance(state, dict) else type(state).__name__
    if found != TRAINING_FORMAT or not all(key in state for key in _KEYS):
        raise ValueError(f"it has format {found!r}, expected {TRAINING_FORMAT!r} with {_KEYS}")
    weights = _tensors([state["net"], state["best_net"], state["optimizer"]])
    if not weights or not all(t.isfinite().all() for t in weights if t.is_floating_point()):
        raise ValueError("it holds no weights or NaN or infinite weights")
    return state


class StateFolder:
    """The two newest training states of one run: ``latest.pt`` and ``previous.pt``.

    A save writes a temporary file, then renames ``latest.pt`` to ``previous.pt`` and the
    temporary file to ``latest.pt``, so a kill at any moment leaves whole files only. Loading
    falls back to ``previous.pt``, warning with the name of the bad file, when ``latest.pt`` is
    missing, truncated, garbled or unsafe; when no state is readable it raises rather than train
    from scratch.

    Parameters
    ----------
    folder : path-like
        Created on the first save.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.latest = self.folder / "latest.pt"
        self.previous = self.folder / "previous.pt"

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` as the latest, keeping the one it replaces as the previous."""
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".latest.", suffix=".tmp", dir=self.folder)
        try:
            with os.fdopen(handle, "wb") as stream:
                torch.save(state, stream)
            if self.latest.exists():
                os.replace(self.latest, self.previous)
            os.replace(temporary, self.latest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def load(self, fingerprint: str) -> tuple[Path, dict[str, Any]] | None:
        """The newest readable state of the run ``fingerprint``, and its file.

        Returns
        -------
        found : (path, state) or None
            None when the folder holds no state, or (after a warning, and cleared) only the
            state of other inputs.

        Raises
        ------
        ResultFileError
            If state files exist but none is readable.
        """
        problems = []
        for path in (self.latest, self.previous):
            if not path.exists():
                continue
            try:
                state = _read_state(path)
            except ValueError as err:
                problems.append(f"{path} was not used: {err}")
                continue
            if problems:
                warnings.warn(
                    f"{problems[0]}; resuming from the older training state {path} instead",
                    stacklevel=3,
                )
            if state["fingerprint"] != fingerprint:
                warnings.warn(
                    f"{self.folder} holds the training state of other inputs (data, prior, "
                    "settings or seed); it was cleared and training starts from the beginning",
                    stacklevel=3,
                )
                self.clear()
                return None
            return path, state
        if problems:
            raise ResultFileError(
                f"no readable NPE training state in {self.folder}: {'; '.join(problems)}. "
                f"Nothing was changed. Delete {self.folder} to train this posterior from the "
                "beginning, or put back an intact latest.pt or previous.pt."
            )
        return None

    def clear(self) -> None:
        """Remove the folder and every state in it."""
        shutil.rmtree(self.folder, ignore_errors=True)


_PRIVATE_FIELDS = ("_neural_net", "_best_model_state_dict", "_summary", "_build_neural_net")


@cache
def resumable(trainer: type) -> type:
    """A subclass of the sbi trainer class ``trainer`` that saves its state after epochs.

    The subclass takes ``states`` (:class:`StateFolder`), ``fingerprint`` (of the inputs,
    :func:`training_fingerprint`) and ``every`` (least seconds between two saves; 0 saves after
    every epoch) besides the trainer's own arguments.

    One class per trainer class (cached), so it can be inspected and patched in tests.

    Raises
    ------
    TypeError
        If ``trainer`` lacks sbi 0.27's epoch hook (another sbi version).
    """
    if not hasattr(trainer, "_summarize_epoch"):
        raise TypeError(
            f"{trainer.__name__} has no _summarize_epoch: resumable training needs sbi 0.27's "
            "trainers (install sbi>=0.27,<0.28)"
        )
    return type(f"Resumable{trainer.__name__}", (_Resumable, trainer), {})


class _Resumable:
    """The part of a resumable trainer that saves and restores sbi's training state."""

    def __init__(self, *, states: StateFolder, fingerprint: str, every: float, **kwargs: Any):
        super().__init__(**kwargs)  # type: ignore[call-arg]
        self.states, self.fingerprint, self.every = states, fingerprint, float(every)
        self.resumed_epochs = 0
        self._seconds_before = 0.0
        self._began = time.perf_counter()
        self._saved_at = time.monotonic()

    @property
    def network(self) -> Any:
        """The estimator being trained (sbi's ``ConditionalDensityEstimator``)."""
        return self._neural_net

    @property
    def seconds(self) -> float:
        """Training time so far, over this run and the runs it resumed."""
        return self._seconds_before + time.perf_counter() - self._began

    def _summarize_epoch(
        self,
        train_loss: float,
        val_loss: float,
        epoch_start_time: float,
        summarization_kwargs: dict[str, Any],
    ) -> None:
        # sbi calls this at the end of every epoch, after which nothing in the epoch loop draws
        # random numbers before the next epoch: the state saved here is an exact resume point.
        super()._summarize_epoch(  # type: ignore[misc]
            train_loss, val_loss, epoch_start_time, summarization_kwargs
        )
        if time.monotonic() - self._saved_at >= self.every:
            self.states.save(self.state(epoch=self.epoch + 1, finished=False))
            self._saved_at = time.monotonic()

    def state(self, *, epoch: int, finished: bool) -> dict[str, Any]:
        """The training state after ``epoch`` epochs, in the format of the module docstring."""
        return {
            "format": TRAINING_FORMAT,
            "fingerprint": self.fingerprint,
            "finished": bool(finished),
            "seconds": float(self.seconds),
            "epoch": int(epoch),
            "net": self._neural_net.state_dict(),
            "best_net": self._best_model_state_dict,
            "optimizer": self.optimizer.state_dict(),
            "val_loss": float(self._val_loss),
            "best_val_loss": float(self._best_val_loss),
            "epochs_since_improvement": int(self._epochs_since_last_improvement),
            "train_indices": self.train_indices,
            "val_indices": self.val_indices,
            "summary": {name: list(values) for name, values in self._summary.items()},
            "rng": torch.get_rng_state(),
        }

    def restore(self, state: dict[str, Any], settings: NPESettings, path: Path) -> None:
        """Put a saved state back (after ``append_simulations``), torch's random state included.

        Then ``train(..., resume_training=True)`` continues where the saved run was.

        Raises
        ------
        ResultFileError
            Naming ``path``, if the state does not fit the network of ``settings`` and the data.
        """
        try:
            theta, x, _ = self.get_simulations()
            train = state["train_indices"]
            net = self._build_neural_net(theta[train], x[train])
            net.load_state_dict(state["net"])
            optimizer = Adam(list(net.parameters()), lr=settings.learning_rate)
            optimizer.load_state_dict(state["optimizer"])
            rng = state["rng"]
            self._neural_net, self.optimizer = net, optimizer
            self.train_indices, self.val_indices = train, state["val_indices"]
            self.epoch = self.resumed_epochs = int(state["epoch"])
            self._val_loss = float(state["val_loss"])
            self._best_val_loss = float(state["best_val_loss"])
            self._best_model_state_dict = state["best_net"]
            self._epochs_since_last_improvement = int(state["epochs_since_improvement"])
            self._summary = {name: list(values) for name, values in state["summary"].items()}
            self._seconds_before = float(state["seconds"])
            torch.set_rng_state(rng)
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as err:
            raise ResultFileError(
                f"the training state {path} does not fit these data and settings "
                f"({type(err).__name__}: {str(err)[:200]}); it is corrupt or was edited. "
                f"Delete {path.parent} to train this posterior from the beginning."
            ) from err
