"""Fixtures shared by the whole test suite.

* Every test starts from the same seeds: numpy's legacy global RNG and torch's are seeded with 0.
* ``chromium`` is Debian's headless Chromium for report tests, installed with apt-get (root) on
  first use; skipped where it cannot be installed, except in CI, where that fails.
* ``slurm_conf`` starts the local single-node SLURM of ``cluster/local_slurm.sh`` once per session
  (root, and apt-get on first use) and stops it at the end. Tests marked ``@pytest.mark.slurm``
  get it automatically (see :func:`pytest_collection_modifyitems`), so a marked test runs with
  ``SLURM_CONF`` set; take ``slurm_conf`` as an argument too when the test needs the path. If
  SLURM cannot start, those tests are skipped, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import pytest
import torch

from cluster.local_slurm import SlurmUnavailableError, local_slurm


@pytest.fixture(autouse=True)
def _seed_rngs() -> None:
    """Seed numpy's legacy global RNG and torch before every test."""
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def slurm_conf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The ``slurm.conf`` of a local SLURM running for this session; ``SLURM_CONF`` points to it."""
    # A short, root-only folder: slurmd puts Unix sockets (at most 107 bytes of path) in it.
    state_dir = tmp_path_factory.mktemp("slurm")
    with ExitStack() as stack:
        try:
            conf = stack.enter_context(local_slurm(state_dir))
        except SlurmUnavailableError as err:
            conf, reason = None, f"local SLURM unavailable: {err}"
        if conf is None:  # outside the except block, so the report shows no chained traceback
            if os.environ.get("CI") == "true":
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
        yield conf


def _install_chromium() -> str | None:
    """Install Debian's chromium with apt-get; return why not, or None on success."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return "chromium is not installed and apt-get as root is not available"
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"]
    for attempt in (install, ["apt-get", "update", "-q"], install):
        result = subprocess.run(attempt, capture_output=True, text=True, env=environment)
        if attempt is install and result.returncode == 0:
            return None
    return f"apt-get could not install chromium: {result.stderr.strip()[-500:]}"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a headless-capable Chromium (Debian's ``chromium`` package)."""
    path = shutil.which("chromium")
    reason = None if path else _install_chromium()
    path = shutil.which("chromium")
    if path is None:
        reason = reason or "chromium is still missing after apt-get install"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give every test marked ``slurm`` the ``slurm_conf`` fixture, and put the files with a
    ``slow`` test first (in their collected order, and so are their tests).

    ``make test`` shares whole files out to two processes in this order: a study of two
    minutes handed out last would run alone while the other process sat idle.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
    for item in items:
        fixturenames = getattr(item, "fixturenames", None)  # doctest items have none
        if item.get_closest_marker("slurm") and fixturenames is not None:
            if "slurm_conf" not in fixturenames:
                fixturenames.append("slurm_conf")
