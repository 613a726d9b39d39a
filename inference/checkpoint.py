"""Safe files for posteriors of every method: plain values and tensors, never pickled objects.

A posterior file is one ``torch.save`` of a dict (format ``emustudy-posterior/2``)::

    format      str    "emustudy-posterior/2"
    method      str    registered method name ("npe", "nle", "nre", "emulator_likelihood", ...)
    settings    dict   the method's settings (MethodSettings.model_dump())
    prior       dict   Prior.model_dump(mode="json")
    theta_dim   int
    x_dim       int
    state_dict  dict   the trained network's tensors (empty for methods that train none)
    training    dict   TrainingInfo.to_dict()
    extra       dict   plain values the method needs to rebuild itself (optional)
    fingerprint str    digest of the training inputs (optional, see inference.resume)
    versions    dict   sbi and torch versions that wrote it (informational)

Files of format ``emustudy-posterior/1`` (NPE only, before methods existed) read as ``npe``.
A file is written atomically (temporary file in the same folder, then ``os.replace``) and read
with ``torch.load(..., weights_only=True)``, which refuses any pickled object instead of running
it, after :func:`verify_torch_file` has checked every record against its CRC-32.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ValidationError

from inference.errors import ResultFileError
from inference.seeds import seeded
from inference.training import TrainingInfo
from simulators.integrity import verify_torch_file

__all__ = [
    "POSTERIOR_FORMAT",
    "write_checkpoint",
    "read_checkpoint",
    "read_settings",
    "read_training",
    "rebuild_network",
    "verify_torch_file",
]

POSTERIOR_FORMAT = "emustudy-posterior/2"
_OLD_FORMAT = "emustudy-posterior/1"
_KEYS = ("format", "method", "settings", "prior", "theta_dim", "x_dim", "state_dict", "training")
_DUMMY_ROWS = 64


def _reason(err: Exception) -> str:
    """The informative part of a ``torch.load`` error (its unpickler line, when there is one)."""
    message = str(err)
    marker = "WeightsUnpickler error:"
    if marker in message:
        message = message.split(marker, 1)[1].strip().split(". ", 1)[0]
    return message[:300]


def write_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically; a crash leaves the old file (or none).

    Parameters
    ----------
    path : path-like
        Its folder is created if missing.
    payload : dict
        Plain values and tensors only, with the keys of the module docstring.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save({"format": POSTERIOR_FORMAT, **payload}, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def read_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a posterior file without executing anything in it.

    Returns
    -------
    payload : dict
        With every key of the module docstring (``extra`` defaults to ``{}``).

    Raises
    ------
    ResultFileError
        If the file is missing, holds pickled objects or is unreadable, or is not an emustudy
        posterior of a known format.
    """
    path = Path(path)
    if not path.is_file():
        raise ResultFileError(
            f"no trained posterior at {path}; train one with inference.train_posterior(...) "
            "and write it with its save(path)"
        )
    try:
        verify_torch_file(path)
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ResultFileError(
            f"{path} is not a plain-data emustudy posterior file and was not loaded "
            f"({type(err).__name__}: {_reason(err)}). Files holding pickled objects are "
            "refused, never run. Retrain the posterior and save it again."
        ) from err
    found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
    if found == _OLD_FORMAT and isinstance(payload, dict):
        payload = {**payload, "format": POSTERIOR_FORMAT, "method": "npe"}
        found = POSTERIOR_FORMAT
    if found != POSTERIOR_FORMAT or not all(key in payload for key in _KEYS):
        raise ResultFileError(
            f"{path} has format {found!r}, expected {POSTERIOR_FORMAT!r} with keys "
            f"{list(_KEYS)}; it was not written by a posterior's save() of this version. "
            "Retrain the posterior and save it again."
        )
    payload.setdefault("extra", {})
    return payload


def rebuild_network(
    builder: Any, payload: dict[str, Any], path: str | os.PathLike[str]
) -> torch.nn.Module:
    """Rebuild the trained network of a checked payload.

    The network is built by ``builder`` (:func:`~inference.settings.network_builder`) on
    standard-normal dummy batches of the stored shapes (non-degenerate, so z-scoring builds
    cleanly), under a fixed seed that leaves torch's global generator untouched;
    ``load_state_dict`` (strict) then overwrites every weight and buffer, the z-scoring
    statistics and flow permutations included.

    Parameters
    ----------
    builder : callable
        ``builder(theta, x)`` returning an untrained network.
    payload : dict
        From :func:`read_checkpoint`.
    path : path-like
        Named in errors.

    Returns
    -------
    network : torch.nn.Module, in eval mode

    Raises
    ------
    ResultFileError
        If the tensors do not rebuild the network or hold NaN or infinite values.
    """
    try:
        with seeded(0):
            network = builder(
                torch.randn(_DUMMY_ROWS, int(payload["theta_dim"])),
                torch.randn(_DUMMY_ROWS, int(payload["x_dim"])),
            )
        network.load_state_dict(payload["state_dict"])
        if not all(t.isfinite().all() for t in payload["state_dict"].values()):
            raise ValueError("the weights hold NaN or infinite values")
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise ResultFileError(
            f"{path} is an emustudy posterior file whose contents do not rebuild the "
            f"network ({type(err).__name__}: {_reason(err)}); it is corrupt or was "
            "edited. Retrain the posterior and save it again."
        ) from err
    network.eval()
    return network


def _unreadable(path: str | os.PathLike[str], what: str, err: Exception) -> ResultFileError:
    return ResultFileError(
        f"{path} is an emustudy posterior file whose {what} does not read back "
        f"({type(err).__name__}: {_reason(err)}); it is corrupt or was edited. Retrain the "
        "posterior and save it again."
    )


def read_settings(
    payload: dict[str, Any], path: str | os.PathLike[str], model: type[BaseModel]
) -> Any:
    """The settings of a checked payload as ``model`` (fields ``model`` lacks are ignored).

    Raises
    ------
    ResultFileError
        If they do not validate.
    """
    try:
        known = {k: v for k, v in dict(payload["settings"]).items() if k in model.model_fields}
        return model.model_validate(known)
    except (ValidationError, KeyError, TypeError, ValueError) as err:
        raise _unreadable(path, "settings", err) from err


def read_training(payload: dict[str, Any], path: str | os.PathLike[str]) -> TrainingInfo:
    """The training record of a checked payload.

    Raises
    ------
    ResultFileError
        If it does not read back.
    """
    try:
        return TrainingInfo.from_dict(payload["training"])
    except (KeyError, TypeError, ValueError) as err:
        raise _unreadable(path, "training record", err) from err
