"""The simulation store: schema, resumable chunks, and refusal to mix campaigns."""

import numpy as np
import pytest

from simulators import GaussianLinear, Stream, sample_seeds
from simulators.errors import StoreError
from simulators.store import (
    SCHEMA_VERSION,
    Status,
    create_store,
    load_pairs,
    open_store,
    pending_chunks,
    store_identity,
    write_rows,
)


@pytest.fixture
def sim():
    return GaussianLinear(dim=2)


def _new(path, sim, n=10, chunk=4, seed=5):
    return create_store(
        path,
        store_identity(sim, n_samples=n, chunk_size=chunk, campaign_seed=seed),
        sim.prior.names,
        sim.output_names,
    )


def _write(path, sim, start, stop, seed=5):
    idx = np.arange(start, stop)
    theta = sim.prior.sample_from_seeds(sample_seeds(seed, idx, Stream.PRIOR))
    seeds = sample_seeds(seed, idx, Stream.SIMULATION)
    write_rows(
        path,
        start,
        theta=theta,
        x=sim.simulate(theta, seeds),
        seed=seeds,
        elapsed=np.zeros(len(idx)),
        status=np.full(len(idx), Status.OK),
    )


def test_schema_on_disk(tmp_path, sim):
    path = tmp_path / "s.zarr"
    assert _new(path, sim) is True
    ds = open_store(path)
    assert set(ds.data_vars) == {"theta", "x", "seed", "elapsed", "status"}
    assert ds["theta"].dims == ("sample", "param") and ds["x"].dims == ("sample", "output")
    assert list(ds["param"].values) == ["theta_0", "theta_1"]
    assert ds["x"].encoding["chunks"] == (4, 2)
    assert (
        ds.attrs["schema_version"] == SCHEMA_VERSION and ds.attrs["simulator"] == "gaussian_linear"
    )
    assert (ds["status"].values == Status.PENDING).all()


def test_pending_chunks_shrink_as_chunks_are_written(tmp_path, sim):
    path = tmp_path / "s.zarr"
    _new(path, sim)
    assert pending_chunks(path) == [(0, 4), (4, 8), (8, 10)]
    _write(path, sim, 4, 8)
    assert pending_chunks(path) == [(0, 4), (8, 10)]
    with pytest.raises(StoreError, match="pending rows"):
        load_pairs(path)
    _write(path, sim, 0, 4)
    _write(path, sim, 8, 10)
    theta, x, counts = load_pairs(path)
    assert theta.shape == (10, 2) and x.shape == (10, 2) and counts["ok"] == 10
    assert np.isfinite(x).all()


def test_reopening_the_same_campaign_resumes(tmp_path, sim):
    path = tmp_path / "s.zarr"
    _new(path, sim)
    _write(path, sim, 0, 4)
    assert _new(path, sim) is False
    assert pending_chunks(path) == [(4, 8), (8, 10)]


def test_another_campaign_is_refused_and_nothing_is_lost(tmp_path, sim):
    path = tmp_path / "s.zarr"
    _new(path, sim)
    _write(path, sim, 0, 4)
    before = open_store(path)["x"].values[:4].copy()
    with pytest.raises(StoreError, match="campaign_seed: stored 5, requested 6"):
        _new(path, sim, seed=6)
    with pytest.raises(StoreError, match="chunk_size"):
        _new(path, sim, chunk=5)
    np.testing.assert_array_equal(open_store(path)["x"].values[:4], before)


def test_invalid_rows_are_excluded_and_counted(tmp_path, sim):
    path = tmp_path / "s.zarr"
    _new(path, sim, n=4, chunk=4)
    status = np.array([Status.OK, Status.INVALID, Status.OK, Status.FAILED])
    write_rows(
        path,
        0,
        theta=np.zeros((4, 2)),
        x=np.ones((4, 2)),
        seed=np.arange(4),
        elapsed=np.zeros(4),
        status=status,
    )
    theta, x, counts = load_pairs(path)
    assert len(theta) == 2 and counts == {
        "pending": 0,
        "ok": 2,
        "invalid": 1,
        "failed": 1,
        "timeout": 0,
    }


def test_not_a_store(tmp_path):
    with pytest.raises(StoreError, match="no simulation store"):
        open_store(tmp_path / "missing.zarr")
    (tmp_path / "junk.zarr").mkdir()
    with pytest.raises(StoreError):
        open_store(tmp_path / "junk.zarr")
