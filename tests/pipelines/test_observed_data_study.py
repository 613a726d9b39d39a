"""A whole study (``emustudy run``) on observed data from a file, scored against reference
draws the user brings (here: exact Gaussian-linear posterior draws, so the study's own check
against the exact posterior must agree with its reported scores)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from inference.reference import ExactReference
from inference.scores import load_scores
from pipelines.layout import StudyLayout
from simulators import GaussianLinear, Stream, sample_seeds

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parents[2]
SETTINGS = {"dim": 2, "prior_var": 0.1, "noise_var": 0.1}


def test_a_study_of_observed_data_scored_against_brought_samples(tmp_path):
    simulator = GaussianLinear(**SETTINGS)
    index = np.arange(3)
    theta = simulator.prior.sample_from_seeds(sample_seeds(99, index, Stream.PRIOR))
    x = simulator.simulate(theta, sample_seeds(99, index, Stream.SIMULATION))
    observed = tmp_path / "observed.csv"
    observed.write_text(
        "x_1,x_0\n" + "".join(f"{row[1]:.17g},{row[0]:.17g}\n" for row in x)  # any column order
    )
    draws = tmp_path / "reference.npy"
    np.save(draws, ExactReference(simulator).sample(x, 600, 5))
    config = {
        "name": "observed",
        "seed": 4,
        "output_dir": str(tmp_path / "studies"),
        "simulator": {"name": "gaussian_linear", "settings": SETTINGS},
        "budgets": {"train": 400, "test": 40, "chunk_size": 400},
        "observations": str(observed),
        "reference": {"kind": "samples", "samples": str(draws)},
        "ladder": [
            {
                "name": "small",
                "simplification": 0,
                "emulator": {"family": "gaussian", "max_epochs": 20},
            }
        ],
        "inference": {"replicates": 1, "num_transforms": 2, "hidden_features": 20},
        "scores": {"posterior_samples": 600, "sbc_samples": 20, "ppc_samples": 10},
        "cluster": {
            "profile": "local",
            "overrides": {"n_workers": 2, "dashboard_address": "127.0.0.1:0"},
        },
    }
    path = tmp_path / "observed.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    layout = StudyLayout(tmp_path / "studies" / "observed")
    assert not layout.simulations("observations").exists()  # nothing simulated for them
    scores = load_scores(layout.level("ceiling").scores)
    assert scores.attrs["reference"] == "samples" and scores.sizes["observation"] == 3
    table = pd.read_csv(layout.report / "scores.csv").set_index("unit")
    # the brought draws are exact, so scores against them are scores against the truth
    gap = (table["c2st_mean"] - table["c2st_vs_truth_mean"]).abs()
    assert (gap < 0.05).all(), table[["c2st_mean", "c2st_vs_truth_mean"]]
    page = (layout.report / "index.html").read_text()
    assert f"draws brought by the user from {draws}" in page
    # the file's observations were used: a changed file makes the study stale, not silently kept
    observed.write_text(observed.read_text().replace(f"{x[0, 0]:.17g}", f"{x[0, 0] + 1.0:.17g}"))
    status = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "status", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "stale" in status.stdout or "changed" in status.stdout, status.stdout
