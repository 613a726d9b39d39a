"""Budgets checked before anything runs: the disk and peak memory a study's config implies.

The estimate is from the config alone: the stores hold ``theta`` and ``x`` as float64 plus a
ledger of about :data:`LEDGER_BYTES` per row; the largest training set (``budgets.train`` or
``budgets.emulated`` rows) is held in memory at once, about :data:`TRAINING_COPIES` times (the
arrays read from the store, their float32 tensors, the batches and the validation split). A
study whose estimate exceeds the machine's memory or the free disk under its ``output_dir`` is
refused, naming the field that drives it; ``force`` (``--force``) runs it anyway. Once the
study's training store has rows, their mean ``elapsed`` gives the core time of the
true-simulator runs too.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from simulators.errors import ConfigError
from simulators.registry import make_simulator

__all__ = [
    "LEDGER_BYTES",
    "TRAINING_COPIES",
    "BudgetEstimate",
    "check_budgets",
    "estimate_budgets",
    "human_bytes",
    "measured_seconds_per_run",
]

LEDGER_BYTES = 28  # seed 8, status 1, attempts 1, elapsed 8, job_id 8, compressed strings ~2
TRAINING_COPIES = 3.0
MEMORY_SHARE = 0.9  # refuse beyond this share of the machine's memory


def human_bytes(n: float) -> str:
    """``n`` bytes as ``"1.2 GB"`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


@dataclass(frozen=True)
class BudgetEstimate:
    """What a study needs, and what this machine has.

    ``memory_field`` and ``disk_field`` name the budget that drives each estimate.
    """

    memory_bytes: float
    memory_field: str
    disk_bytes: float
    disk_field: str
    ram_bytes: float
    free_disk_bytes: float
    disk_path: Path
    simulator_core_s: float | None = None

    def __str__(self) -> str:
        text = (
            f"estimated peak memory {human_bytes(self.memory_bytes)} (driven by "
            f"{self.memory_field}), disk {human_bytes(self.disk_bytes)} (mostly "
            f"{self.disk_field}); this machine has {human_bytes(self.ram_bytes)} of memory and "
            f"{human_bytes(self.free_disk_bytes)} free under {self.disk_path}"
        )
        if self.simulator_core_s is not None:
            text += (
                f"; true-simulator runs about {self.simulator_core_s / 3600:.2g} core-hours "
                "(measured per sample in the training store)"
            )
        return text


def measured_seconds_per_run(config) -> float | None:
    """Mean ``elapsed`` of the finished rows of the study's training store (core seconds per
    true-simulator run), or None without such a store or rows."""
    from pipelines.layout import StudyLayout
    from simulators.store import Status, open_store

    store = StudyLayout(config.study_dir).simulations("train")
    if not store.exists():
        return None
    try:
        ds = open_store(store)
        ok = ds["status"].values == Status.OK
        elapsed = ds["elapsed"].values[ok] if ok.any() else None
    except Exception:  # a damaged store is reported elsewhere; no estimate then
        return None
    return None if elapsed is None else float(elapsed.mean())


def _measured_core_s(config, runs: int) -> float | None:
    """Core seconds of ``runs`` true-simulator runs at the training store's mean per row."""
    per_run = measured_seconds_per_run(config)
    return None if per_run is None else per_run * runs


def _machine_memory() -> float:
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


def _free_disk(path: Path) -> tuple[float, Path]:
    """Free bytes on the disk that holds ``path`` (its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        return float(shutil.disk_usage(path).free), path
    except OSError:
        return float("inf"), path


def estimate_budgets(config, *, measure: bool = False) -> BudgetEstimate:
    """Disk and peak memory of ``config``'s study (a :class:`pipelines.config.StudyConfig`);
    with ``measure``, the true-simulator core time from its training store, if it has one."""
    simulator = make_simulator(config.simulator.name, **config.simulator.settings)
    row = 8 * (len(simulator.prior.names) + len(simulator.output_names))
    budgets = config.budgets
    emulated = budgets.emulated_runs
    stores = {
        "budgets.train": budgets.train,
        "budgets.test": budgets.test,
        "budgets.observations": config.n_observations,
        # finetune levels emulate nothing: they train on their base's store and true runs
        "budgets.emulated": emulated * sum(lv.kind != "finetune" for lv in config.ladder),
        "reference.budget": config.reference_budget,
    }
    disk = {field: rows * (row + LEDGER_BYTES) for field, rows in stores.items()}
    training = {
        "budgets.train": budgets.train,
        "budgets.emulated": emulated,
        "reference.budget": config.reference_budget,
    }
    memory_field = max(training, key=training.get)
    # the rows at once, a few copies; a campaign's driver holds a status byte per row besides
    memory = training[memory_field] * (row * TRAINING_COPIES + 9)
    free, where = _free_disk(config.study_dir)
    return BudgetEstimate(
        memory_bytes=float(memory),
        memory_field=memory_field,
        disk_bytes=float(sum(disk.values())),
        disk_field=max(disk, key=disk.get),
        ram_bytes=_machine_memory(),
        free_disk_bytes=free,
        disk_path=where,
        simulator_core_s=_measured_core_s(
            config,
            budgets.train + budgets.test + (budgets.observations or 0) + config.reference_budget,
        )
        if measure
        else None,
    )


def check_budgets(config, *, force: bool = False) -> BudgetEstimate:
    """The estimate; refuse a study that cannot fit this machine unless ``force``.

    Raises
    ------
    ConfigError
        Naming the budget field, its value, the estimate, the machine's memory or free disk,
        and ``--force``.
    """
    found = estimate_budgets(config)
    if force:
        return found
    problems = []
    if found.memory_bytes > MEMORY_SHARE * found.ram_bytes:
        problems.append(
            f"{found.memory_field}={_value(config, found.memory_field):,} needs about "
            f"{human_bytes(found.memory_bytes)} of memory (its rows are trained on at once), "
            f"but this machine has {human_bytes(found.ram_bytes)}"
        )
    if found.disk_bytes > found.free_disk_bytes:
        problems.append(
            f"the stores need about {human_bytes(found.disk_bytes)} of disk (mostly "
            f"{found.disk_field}={_value(config, found.disk_field):,}), but "
            f"{found.disk_path} has {human_bytes(found.free_disk_bytes)} free"
        )
    if problems:
        raise ConfigError(
            f"study {config.name!r} does not fit this machine: {'; '.join(problems)}. Nothing "
            "was run. Lower the budget named, run it where it fits, or pass --force to run it "
            "anyway (e.g. on a cluster whose nodes are larger than this one)"
        )
    return found


def _value(config, field: str) -> int:
    budgets = config.budgets
    if field == "budgets.emulated":
        return budgets.emulated_runs
    if field == "reference.budget":
        return config.reference_budget
    if field == "budgets.observations":
        return config.n_observations
    return int(getattr(budgets, field.split(".")[1]))
