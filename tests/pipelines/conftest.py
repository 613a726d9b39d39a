"""The quickstart study, run once per test session on a real local Dask cluster (loopback)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pipelines.config import StudyConfig, load_config
from pipelines.study import StudyRun, run_study

QUICKSTART = Path(__file__).parents[2] / "configs" / "quickstart.yaml"
LOOPBACK_CLUSTER = {
    "profile": "local",
    "overrides": {"n_workers": 2, "dashboard_address": "127.0.0.1:0"},
}


def _quickstart_config(output_dir: Path, **changes: object) -> StudyConfig:
    return load_config(QUICKSTART, output_dir=output_dir, cluster=LOOPBACK_CLUSTER, **changes)


@pytest.fixture(scope="session")
def quickstart_config() -> Callable[..., StudyConfig]:
    """``make(output_dir, **changes)``: the quickstart config, its study folder in output_dir."""
    return _quickstart_config


@pytest.fixture(scope="session")
def quickstart_study(tmp_path_factory: pytest.TempPathFactory) -> tuple[StudyConfig, StudyRun]:
    """The whole quickstart study, run once; tests must not modify its folder."""
    config = _quickstart_config(tmp_path_factory.mktemp("studies"))
    return config, run_study(config, progress=False)
