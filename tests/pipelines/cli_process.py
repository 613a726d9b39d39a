"""``emustudy`` run as a user runs it (a separate Python process, from the repository root), and
the reduced control study the plan and adaptive tests run.

A module of its own, not a conftest, so test modules can import it by a unique name.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

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


def reduced_control(tmp_path: Path) -> Path:
    """control.yaml with 6 levels (60 to 2000 runs), fewer pairs and samples, its study folder
    under ``tmp_path``; returns the config's path."""
    raw = yaml.safe_load((ROOT / "configs" / "control.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "studies")
    raw["budgets"].update(train=2000, test=100, observations=3)
    raw["ladder"][0]["sweep"]["range"].update(stop=2000, num=6)
    raw["scores"].update(posterior_samples=500, sbc_samples=50, ppc_samples=20)
    raw["cluster"]["overrides"]["dashboard_address"] = "127.0.0.1:0"
    path = tmp_path / "control.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
