"""``emustudy`` run as a user runs it: a separate Python process, from the repository root.

A module of its own, not a conftest, so test modules can import it by a unique name.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def run_cli(*args: str, timeout: int = 900) -> subprocess.CompletedProcess:
    """``python -m pipelines.cli ARGS`` with a wide console and a bare environment."""
    return subprocess.run(
        [sys.executable, "-m", "pipelines.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
    )
