"""Which config made each output: a small JSON manifest of stage digests per folder.

A stage is done when its outputs exist and the manifest holds the digest of the config that
would make them now, and its simulation stores are whole (:func:`simulators.integrity.
store_damage`): a store with a damaged or missing chunk is ``damaged``, so the stage runs again
and its campaign recomputes just those chunks. Outputs made by another config are never
overwritten: the stage refuses.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from simulators.errors import StaleOutputError
from simulators.integrity import is_store, store_damage

__all__ = ["Manifest"]


class Manifest:
    """Stage digests of one output folder, stored in ``path`` (a JSON file)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def entries(self) -> dict[str, str]:
        """Stage name to the digest of the config that made its outputs."""
        if not self.path.exists():
            return {}
        return json.loads(self.path.read_text())

    def state(self, stage: str, digest: str, outputs: list[Path]) -> str:
        """``done`` (outputs exist, made by ``digest``), ``damaged`` (so, but a store among
        them has damaged or missing chunks), ``stale`` (an output exists that another config
        made), ``partial`` (some outputs exist) or ``missing``."""
        recorded = self.entries().get(stage)
        present = [path.exists() for path in outputs]
        if recorded is not None and recorded != digest and any(present):
            return "stale"
        if recorded == digest and all(present):
            return "damaged" if self.damage(outputs) else "done"
        return "partial" if any(present) else "missing"

    @staticmethod
    def damage(outputs: list[Path]) -> list[str]:
        """One line per damaged chunk file of the simulation stores among ``outputs``."""
        return [line for path in outputs if is_store(path) for line in store_damage(path)]

    def is_done(self, stage: str, digest: str, outputs: list[Path]) -> bool:
        """True when ``outputs`` exist and were made by the config with ``digest``.

        Raises
        ------
        StaleOutputError
            If an output exists that a different config made.
        """
        state = self.state(stage, digest, outputs)
        if state == "stale":
            recorded = self.entries().get(stage)
            present = [p for p in outputs if p.exists()]
            raise StaleOutputError(
                f"{', '.join(str(p) for p in present)} was made by a different config "
                f"(stage {stage!r}: made by config {recorded}, this config is {digest}). "
                "Nothing was overwritten. Restore the config that made it, give the study another "
                "name, or delete the stale output to recompute it."
            )
        return state == "done"

    def mark_done(self, stage: str, digest: str) -> None:
        """Record that ``stage``'s outputs are complete for ``digest`` (atomic write)."""
        entries = {**self.entries(), stage: digest}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, suffix=".tmp")
        with os.fdopen(handle, "w") as file:
            json.dump(entries, file, indent=2, sort_keys=True)
        os.replace(temporary, self.path)
