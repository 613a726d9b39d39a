"""The record of one NPE training run, and the in-memory tracker that collects it.

sbi's trainer logs its metrics to a ``Tracker``; without one it opens a TensorBoard writer under
``./sbi-logs`` in the working directory. :class:`LossTracker` implements sbi's ``Tracker``
protocol in memory instead, so training writes no files, and :class:`TrainingInfo` keeps what
it recorded in plain types that a posterior file can hold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = ["LossTracker", "TrainingInfo"]


class LossTracker:
    """sbi ``Tracker`` that keeps every logged metric in memory and writes nothing.

    Attributes
    ----------
    metrics : dict of str to list of float
        Values in the order they were logged, e.g. ``"training_loss"`` (one per epoch).
    params : dict
        Whatever sbi passed to :meth:`log_params`.
    """

    def __init__(self) -> None:
        self.metrics: dict[str, list[float]] = {}
        self.params: dict[str, Any] = {}

    @property
    def log_dir(self) -> str | None:
        """No directory: nothing is written."""
        return None

    def log_metric(self, name: str, value: float, step: int | None = None) -> None:
        """Append ``value`` to the history of ``name`` (``step`` is implied by the order)."""
        self.metrics.setdefault(name, []).append(float(value))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Append each value to the history of its name."""
        for name, value in metrics.items():
            self.log_metric(name, value, step)

    def log_params(self, params: dict[str, Any]) -> None:
        """Remember the parameters."""
        self.params.update(params)

    def add_figure(self, name: str, figure: Any, step: int | None = None) -> None:
        """Ignore figures: they are not part of the training record."""

    def flush(self) -> None:
        """Nothing is buffered."""

    def history(self, name: str) -> list[float]:
        """Logged values of ``name``, oldest first (empty if never logged)."""
        return list(self.metrics.get(name, []))


@dataclass(frozen=True)
class TrainingInfo:
    """What one training run did.

    Attributes
    ----------
    epochs : int
        Epochs trained (sbi may run one more than ``max_num_epochs`` before it stops).
    best_validation_loss : float
        Lowest mean validation loss (negative log density per pair); its weights are kept.
    seconds : float
        Wall-clock time of the training call.
    n_train, n_validation : int
        Pairs used for training and for validation.
    converged : bool
        False when training stopped at ``max_num_epochs`` instead of by early stopping.
    training_loss, validation_loss : tuple of float
        Per-epoch losses.
    resumed_epochs : int
        Epochs taken from a saved training state of a killed run instead of trained again.
    """

    epochs: int
    best_validation_loss: float
    seconds: float
    n_train: int
    n_validation: int
    converged: bool
    training_loss: tuple[float, ...] = ()
    validation_loss: tuple[float, ...] = ()
    resumed_epochs: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists for the loss histories)."""
        record = asdict(self)
        record["training_loss"] = list(self.training_loss)
        record["validation_loss"] = list(self.validation_loss)
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> TrainingInfo:
        """Inverse of :meth:`to_dict`.

        Raises
        ------
        KeyError, TypeError, ValueError
            If a field is missing or has the wrong type.
        """
        names = {f.name for f in fields(cls)}
        unknown = set(record) - names
        if unknown:
            raise KeyError(f"unknown training fields {sorted(unknown)}; expected {sorted(names)}")
        return cls(
            epochs=int(record["epochs"]),
            best_validation_loss=float(record["best_validation_loss"]),
            seconds=float(record["seconds"]),
            n_train=int(record["n_train"]),
            n_validation=int(record["n_validation"]),
            converged=bool(record["converged"]),
            training_loss=tuple(float(v) for v in record.get("training_loss", ())),
            validation_loss=tuple(float(v) for v in record.get("validation_loss", ())),
            resumed_epochs=int(record.get("resumed_epochs", 0)),
        )
