"""Saving and loading trained posteriors: exact round trips, and refusal of unsafe files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from inference import NPEPosterior, NPESettings, ResultFileError, load_posterior, train_npe
from simulators import ConfigError, make_simulator


def assert_same_posterior(a: NPEPosterior, b: NPEPosterior, problem) -> None:
    theta, x = problem.theta_test[:50], problem.x_test[:50]
    np.testing.assert_array_equal(a.log_prob(theta, x), b.log_prob(theta, x))
    np.testing.assert_array_equal(a.sample(x[0], 100, seed=4), b.sample(x[0], 100, seed=4))
    np.testing.assert_array_equal(a.sample_batched(x, 20, seed=5), b.sample_batched(x, 20, seed=5))


def test_round_trip_is_exact(good_posterior: NPEPosterior, problem, tmp_path: Path) -> None:
    path = tmp_path / "posteriors" / "good.pt"
    good_posterior.save(path)
    assert os.listdir(path.parent) == ["good.pt"]  # no temporary file left behind
    loaded = load_posterior(path, problem.sim.prior)
    assert loaded.settings == good_posterior.settings
    assert loaded.training == good_posterior.training
    assert (loaded.theta_dim, loaded.x_dim) == (3, 3)
    assert_same_posterior(good_posterior, loaded, problem)


@pytest.mark.filterwarnings("ignore:torch.triangular_solve is deprecated")
@pytest.mark.parametrize("estimator", ["nsf", "mdn"])
def test_round_trip_of_every_estimator(estimator: str, problem, tmp_path: Path) -> None:
    settings = NPESettings(
        density_estimator=estimator, hidden_features=16, num_transforms=1, max_num_epochs=2
    )
    with pytest.warns(UserWarning, match="max_num_epochs"):
        posterior = train_npe(
            problem.theta[:500], problem.x[:500], problem.sim.prior, settings, seed=1
        )
    posterior.save(tmp_path / "p.pt")
    loaded = load_posterior(tmp_path / "p.pt", problem.sim.prior)
    assert_same_posterior(posterior, loaded, problem)


def test_saving_again_replaces_the_file(good_posterior, problem, tmp_path: Path) -> None:
    path = tmp_path / "p.pt"
    path.write_bytes(b"old")
    good_posterior.save(path)
    assert load_posterior(path, problem.sim.prior).training == good_posterior.training


class _Planted:
    """Pickles to a call that creates ``marker`` when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_planted_pickle_is_refused_not_run(good_posterior, problem, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    good_posterior.save(path)
    payload = torch.load(path, weights_only=True)
    payload["training"] = _Planted(marker)
    torch.save(payload, path)
    with pytest.raises(ResultFileError, match="evil.pt"):
        load_posterior(path, problem.sim.prior)
    assert not marker.exists()
    with open(path, "wb") as stream:
        pickle.dump(_Planted(marker), stream, protocol=2)
    with pytest.raises(ResultFileError, match="evil.pt"):
        load_posterior(path, problem.sim.prior)
    assert not marker.exists()
    with pytest.raises(FileNotFoundError):  # the planted call really would create it
        pickle.loads(pickle.dumps(_Planted(tmp_path / "missing" / "x")))


def test_missing_corrupt_and_foreign_files_are_refused(good_posterior, problem, tmp_path) -> None:
    prior = problem.sim.prior
    with pytest.raises(ResultFileError, match="no trained posterior"):
        load_posterior(tmp_path / "absent.pt", prior)
    good_posterior.save(tmp_path / "good.pt")
    data = (tmp_path / "good.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ResultFileError, match="cut.pt"):
        load_posterior(tmp_path / "cut.pt", prior)
    torch.save({"format": "something-else/1"}, tmp_path / "foreign.pt")
    with pytest.raises(ResultFileError, match="something-else"):
        load_posterior(tmp_path / "foreign.pt", prior)
    payload = torch.load(tmp_path / "good.pt", weights_only=True)
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = torch.zeros(1, 2, 3)
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(ResultFileError, match="do not rebuild"):
        load_posterior(tmp_path / "edited.pt", prior)


def test_loading_with_another_prior_is_refused(good_posterior, tmp_path: Path) -> None:
    good_posterior.save(tmp_path / "p.pt")
    other = make_simulator("gaussian_linear", dim=3, prior_var=0.2).prior
    with pytest.raises(ConfigError, match="trained with prior"):
        load_posterior(tmp_path / "p.pt", other)
