"""Install ``emustudy_faulty.FaultyGaussian`` as a plugin distribution (an entry point) that an
``emustudy`` subprocess finds by name, ``faulty_gaussian``.

The simulator is Gaussian linear (exact posterior known) with three more settings:
``raise_share``, ``nan_share`` and ``hang_share``. A row's fate depends on its seed alone
(:func:`emustudy_faulty.fate`), so the same rows fail in every batch, child process and retry; a
batch holding a raising row raises, one holding a hanging row hangs.
"""

from __future__ import annotations

import os
from pathlib import Path

from simulators.registry import ENTRY_POINT_GROUP

__all__ = ["PLUGIN_NAME", "install_faulty_plugin"]

PLUGIN_NAME = "faulty_gaussian"
HERE = Path(__file__).resolve().parent


def install_faulty_plugin(folder: Path) -> dict[str, str]:
    """Write the plugin's dist-info under ``folder``; returns the environment for an
    ``emustudy`` subprocess (its ``PYTHONPATH`` holds ``folder``, this folder and the checkout)."""
    info = Path(folder) / "emustudy_faulty-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: emustudy_faulty\nVersion: 0.1\n")
    entry = f"[{ENTRY_POINT_GROUP}]\n{PLUGIN_NAME} = emustudy_faulty:FaultyGaussian\n"
    (info / "entry_points.txt").write_text(entry)
    paths = [str(folder), str(HERE), str(HERE.parents[1])]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
