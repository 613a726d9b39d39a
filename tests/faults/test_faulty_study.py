"""A study whose true simulator is a plugin that raises, returns NaN and hangs for shares of its
rows: ``emustudy simulate`` finishes, and the stores' ledgers hold every failure and why.

The whole ``emustudy run`` of such a study finishes too: the stages after the campaigns
(emulator error, posterior predictive checks) call the simulator through ``cluster.guarded``.
"""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from emustudy_faulty import fate
from faulty_plugin import PLUGIN_NAME, install_faulty_plugin

from pipelines.layout import StudyLayout
from simulators.store import Status, open_store

ROOT = Path(__file__).resolve().parents[2]
SHARES = {"raise_share": 0.1, "nan_share": 0.05, "hang_share": 0.01}


@pytest.mark.slow
def test_simulate_finishes_and_records_raising_nan_and_hanging_rows(tmp_path):
    environment = install_faulty_plugin(tmp_path / "plugin")
    config = {
        "name": "faulty",
        "seed": 5,
        "output_dir": str(tmp_path / "studies"),
        "simulator": {"name": PLUGIN_NAME, "settings": {"dim": 2, **SHARES}},
        "budgets": {"train": 300, "test": 60, "observations": 2, "chunk_size": 100},
        "campaign": {"retries": 1, "timeout_s": 2},
        "ladder": [{"name": "wide", "simplification": 0, "emulator": {"family": "maf"}}],
    }
    path = tmp_path / "faulty.yaml"
    path.write_text(yaml.safe_dump(config))
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "simulate", str(path), "--workers", "2"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    took = time.perf_counter() - began
    assert done.returncode == 0, done.stderr[-3000:]
    store = StudyLayout(tmp_path / "studies" / "faulty").simulations("train")
    ds = open_store(store)
    status, error, seeds = ds["status"].values, ds["error"].values, ds["seed"].values
    kind = fate(seeds, *SHARES.values())
    assert (kind == 1).sum() > 10 and (kind == 2).sum() > 5 and (kind == 3).sum() >= 1
    np.testing.assert_array_equal(status == Status.FAILED, kind == 1)
    np.testing.assert_array_equal(status == Status.INVALID, kind == 2)
    np.testing.assert_array_equal(status == Status.TIMEOUT, kind == 3)
    assert set(error[kind == 1]) == {"RuntimeError: solver diverged"}
    assert all(e.startswith("timed out after 2 s beyond") for e in error[kind == 3])
    assert (ds["attempts"].values[kind == 1] == 2).all()  # one retry each
    test_seeds = open_store(store.with_name("test.zarr"))["seed"].values
    hangs = int((kind == 3).sum()) + int((fate(test_seeds, *SHARES.values()) == 3).sum())
    print(f"{hangs} hung rows across the stores; simulate took {took:.0f} s")
    # each hang costs its batch's deadline and then its own: about 2 x 2 s, not 2 s x 100 rows
    assert took < 60 + hangs * 2 * 2 * 2


@pytest.mark.slow
def test_the_whole_study_of_a_raising_and_hanging_simulator_finishes(tmp_path):
    environment = install_faulty_plugin(tmp_path / "plugin")
    config = {
        "name": "faulty-run",
        "seed": 6,
        "output_dir": str(tmp_path / "studies"),
        "simulator": {"name": PLUGIN_NAME, "settings": {"dim": 2, **SHARES}},
        "budgets": {"train": 400, "test": 80, "observations": 2, "chunk_size": 200},
        "campaign": {"retries": 1, "timeout_s": 2},
        "ladder": [
            {
                "name": "small",
                "simplification": 0,
                "emulator": {"family": "gaussian", "max_epochs": 5},
            }
        ],
        "inference": {"replicates": 1, "max_num_epochs": 5, "hidden_features": 16},
        "scores": {"posterior_samples": 200, "sbc_samples": 20, "ppc_samples": 20, "lc2st_null": 3},
        "cluster": {"profile": "local", "overrides": {"n_workers": 2, "dashboard_address": ":0"}},
    }
    path = tmp_path / "faulty.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", str(path)],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    layout = StudyLayout(tmp_path / "studies" / "faulty-run")
    table = (layout.report / "scores.csv").read_text()
    assert "small" in table and "ceiling" in table
    page = (layout.report / "index.html").read_text()
    assert "Rows lost to the simulator: simulate-train:" in page
    assert "emulator error of small:" in page and "Held-out pairs dropped" in page
    assert "Posterior predictive checks: up to" in page
    # the emulator error was measured though the simulator raised and hung for some rows
    from inference.emulator_error import load_emulator_error

    error = load_emulator_error(layout.level("small").emulator_error)
    assert np.isfinite(float(error["c2st"])) and int(error.attrs["non_finite_draws"]) > 0
    # the held-out pairs that failed are counted where they are scored
    from inference.scores import load_scores

    scores = load_scores(layout.level("small").scores)
    test_status = open_store(layout.simulations("test"))["status"].values
    assert int(scores["n_invalid_test"].max()) == int((test_status != Status.OK).sum()) > 0
    assert np.isfinite(scores["ppc_distance"].values).all()
    # the posterior predictive check ran the raising simulator too, and records what it lost
    assert 0 < float(scores["ppc_failed_share"].mean()) < 0.5
