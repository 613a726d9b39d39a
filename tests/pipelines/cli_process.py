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


def reduced_control(
    tmp_path: Path,
    *,
    train: int = 2000,
    levels: int = 6,
    test: int = 100,
    posterior_samples: int = 500,
    sbc_samples: int = 50,
) -> Path:
    """control.yaml with ``levels`` levels (60 to ``train`` runs), fewer pairs and samples, its
    study folder under ``tmp_path``; returns the config's path."""
    raw = yaml.safe_load((ROOT / "configs" / "control.yaml").read_text())
    raw["output_dir"] = str(tmp_path / "studies")
    raw["budgets"].update(train=train, test=test, observations=3)
    raw["ladder"][0]["sweep"]["range"].update(stop=train, num=levels)
    raw["scores"].update(
        posterior_samples=posterior_samples, sbc_samples=sbc_samples, ppc_samples=20
    )
    raw["cluster"]["overrides"]["dashboard_address"] = "127.0.0.1:0"
    path = tmp_path / "control.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path
