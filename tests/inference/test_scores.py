"""The score dataset of a posterior, and its Zarr round trip."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import inference
from inference import SCORES_FORMAT, ResultFileError, load_scores, save_scores, score_posterior
from simulators import ConfigError

N_OBS, N_REF, N_PAIRS = 2, 600, 100


@pytest.fixture(scope="module")
def scores(good_posterior, problem) -> xr.Dataset:
    return score_posterior(good_posterior, **score_inputs(problem))


def score_inputs(problem, **changes) -> dict:
    x_obs = problem.x_test[-N_OBS:]
    reference = np.stack(
        [
            problem.sim.sample_posterior(x_o, N_REF, np.random.default_rng(i))
            for i, x_o in enumerate(x_obs)
        ]
    )
    inputs = dict(
        x_obs=x_obs,
        reference_samples=reference,
        theta_test=problem.theta_test[:N_PAIRS],
        x_test=problem.x_test[:N_PAIRS],
        n_posterior_samples=500,
        n_sbc_samples=100,
        seed=11,
    )
    return {**inputs, **changes}


def test_score_dataset_layout(scores: xr.Dataset, good_posterior) -> None:
    assert dict(scores.sizes) == {
        "observation": N_OBS,
        "test_pair": N_PAIRS,
        "param": 3,
        "alpha": 21,
        "credibility": 19,
        "draw": 500,
    }
    for name in ("mmd", "lc2st_statistic", "lc2st_pvalue"):
        assert scores[name].dims == ("observation",)
    assert (np.abs(scores["mmd"]) < 0.05).all()
    assert int(scores["n_invalid_test"]) == 0
    assert abs(float(scores["tarp_atc"])) < 0.1 and float(scores["tarp_pvalue"]) > 0.01
    assert np.abs(scores["hpd_coverage"] - scores["credibility"]).max() < 0.15
    # Gaussian linear, prior variance 0.1, posterior variance 0.05: contraction 1/2, and the
    # posterior mean misses theta by sqrt(0.05) on average (RMS)
    np.testing.assert_allclose(scores["contraction"], 0.5, atol=0.08)
    np.testing.assert_allclose(scores["mean_error"], np.sqrt(0.05), atol=0.05)
    assert scores["c2st"].dims == ("observation",)
    assert scores["sbc_rank"].dims == ("test_pair", "param")
    assert scores["sbc_rank"].dtype == np.int64
    assert list(scores["param"].values) == ["theta_0", "theta_1", "theta_2"]
    assert ((scores["c2st"] >= 0.4) & (scores["c2st"] <= 0.62)).all()
    assert float(scores["nltp_mean"]) == pytest.approx(float(scores["nltp"].mean()))
    assert ((scores["sbc_pvalue"] >= 0) & (scores["sbc_pvalue"] <= 1)).all()
    assert scores.attrs["format"] == SCORES_FORMAT
    assert scores.attrs["method_settings"] == good_posterior.settings
    assert scores.attrs["method"] == "npe"
    assert scores.attrs["n_posterior_samples"] == 500 and scores.attrs["seed"] == 11


def test_scores_are_reproducible_from_the_seed(scores, good_posterior, problem) -> None:
    again = score_posterior(good_posterior, **score_inputs(problem))
    xr.testing.assert_identical(scores, again)


def test_score_inputs_are_checked(good_posterior, problem) -> None:
    with pytest.raises(ConfigError, match="reference_samples"):
        score_posterior(good_posterior, **score_inputs(problem, n_posterior_samples=N_REF + 1))
    with pytest.raises(ConfigError, match="x_obs"):
        score_posterior(good_posterior, **score_inputs(problem, x_obs=problem.x_test[:3]))
    with pytest.raises(ConfigError, match="theta_test"):
        score_posterior(good_posterior, **score_inputs(problem, x_test=problem.x_test[:5]))


def test_zarr_round_trip(scores: xr.Dataset, tmp_path: Path) -> None:
    path = tmp_path / "scores.zarr"
    save_scores(scores, path)
    loaded = load_scores(path)
    xr.testing.assert_identical(loaded, scores)
    assert loaded.attrs == scores.attrs
    save_scores(scores.assign(nltp_mean=scores["nltp_mean"] + 1), path)  # replaces the store
    assert float(load_scores(path)["nltp_mean"]) == pytest.approx(float(scores["nltp_mean"]) + 1)
    assert sorted(os.listdir(tmp_path)) == ["scores.zarr"]  # no temporary folders left


def test_foreign_paths_are_neither_overwritten_nor_loaded(scores, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data.txt").write_text("keep me")
    with pytest.raises(ResultFileError, match="not an emustudy score store"):
        save_scores(scores, precious)
    assert (precious / "data.txt").read_text() == "keep me"
    with pytest.raises(ResultFileError, match="no score store"):
        load_scores(tmp_path / "absent.zarr")
    with pytest.raises(ResultFileError, match="precious"):
        load_scores(precious)
    xr.Dataset({"a": ("i", np.arange(3))}).to_zarr(tmp_path / "other.zarr", consolidated=False)
    with pytest.raises(ResultFileError, match="format"):
        load_scores(tmp_path / "other.zarr")


def test_inference_imports_no_cluster_machinery() -> None:
    """No module of inference/ imports dask, distributed, the cluster layer or SLURM tools."""
    banned = {"dask", "distributed", "dask_jobqueue", "cluster"}
    package = Path(inference.__file__).parent
    for module in package.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top not in banned and "slurm" not in name.lower(), f"{module.name}: {name}"


def test_scores_work_where_dask_is_not_installed(tmp_path: Path) -> None:
    """xarray uses dask when it is installed; the score store must not need it."""
    store = str(tmp_path / "s.zarr")
    script = (
        "import sys\n"
        "sys.modules.update(dask=None, distributed=None)  # make both unimportable\n"
        "import numpy as np, xarray as xr\n"
        "import inference\n"
        f"ds = xr.Dataset({{'a': ('i', np.arange(3.0))}}, attrs={{'format': {SCORES_FORMAT!r}}})\n"
        f"inference.save_scores(ds, {store!r})\n"
        f"xr.testing.assert_identical(inference.load_scores({store!r}), ds)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(inference.__file__).resolve().parents[1])}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
