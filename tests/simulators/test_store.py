"""The simulation store: schema, resumable chunks, and refusal to mix campaigns."""

import numpy as np
import pytest

from simulators import GaussianLinear, Stream, sample_seeds
from simulators.errors import StoreError
from simulators.store import (
    ERROR_CHARS,
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
    assert set(ds.data_vars) == {
        "theta",
        "x",
        "seed",
        "status",
        "attempts",
        "error",
        "elapsed",
        "host",
        "job_id",
    }
    assert ds["error"].dtype == f"<U{ERROR_CHARS}" and ds["attempts"].dtype == np.uint8
    assert ds["theta"].dims == ("sample", "param") and ds["x"].dims == ("sample", "output")
    assert list(ds["param"].values) == ["theta_0", "theta_1"]
    assert ds["x"].encoding["chunks"] == (4, 2)
    assert (
        ds.attrs["schema_version"] == SCHEMA_VERSION and ds.attrs["simulator"] == "gaussian_linear"
    )
    assert (ds["status"].values == Status.PENDING).all()
    assert (ds["attempts"].values == 0).all() and (ds["job_id"].values == -1).all()
    assert set(ds["error"].values) == {""} and set(ds["host"].values) == {""}


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


def test_ledger_round_trips_and_truncates_long_errors(tmp_path, sim):
    path = tmp_path / "s.zarr"
    _new(path, sim, n=4, chunk=4)
    long = "RuntimeError('solver diverged at é " + "x" * 500 + "')"
    write_rows(
        path,
        0,
        theta=np.zeros((4, 2)),
        x=np.ones((4, 2)),
        seed=np.arange(4),
        status=np.array([Status.OK, Status.FAILED, Status.INVALID, Status.TIMEOUT]),
        attempts=np.array([1, 3, 1, 2]),
        error=np.array(["", long, "non-finite output", "timed out after 1 s"]),
        elapsed=np.array([0.5, 0.25, 0.125, 1.0]),
        host="node-7",
        job_id=4242,
    )
    ds = open_store(path)
    assert list(ds["attempts"].values) == [1, 3, 1, 2]
    assert list(ds["error"].values) == [
        "",
        long[:ERROR_CHARS],
        "non-finite output",
        "timed out after 1 s",
    ]
    assert list(ds["elapsed"].values) == [0.5, 0.25, 0.125, 1.0]
    assert set(ds["host"].values) == {"node-7"} and set(ds["job_id"].values) == {4242}


def test_a_schema_1_store_is_refused_with_the_way_out(tmp_path, sim):
    import xarray as xr

    path = tmp_path / "old.zarr"
    xr.Dataset({"status": ("sample", np.ones(3, np.int8))}, attrs={"schema_version": 1}).to_zarr(
        path, consolidated=False
    )
    with pytest.raises(StoreError, match="schema-1 .* delete it and run the campaign again"):
        open_store(path)
    with pytest.raises(StoreError, match="schema-1"):
        _new(path, sim)


def test_raw_chunk_files_are_the_bytes_zarr_itself_writes(tmp_path, sim):
    import zarr

    rows = {
        "theta": np.arange(20.0).reshape(10, 2) / 7,
        "x": np.linspace(-1, 1, 20).reshape(10, 2),
        "seed": np.arange(10, dtype=np.uint64) * 2**40,
        "status": np.array([1, 2, 3, 4, 1, 1, 1, 1, 2, 1], dtype=np.int8),
        "attempts": np.array([1, 1, 3, 1, 2, 1, 1, 1, 1, 1], dtype=np.uint8),
        "elapsed": np.linspace(0.1, 1.0, 10),
        "job_id": np.full(10, 77, dtype=np.int64),
        "error": np.array(["", "RuntimeError: x", "nan", "", "", "é" * 300, "", "", "inf", ""]),
        "host": np.full(10, "node-1"),
    }
    ours, theirs = tmp_path / "ours.zarr", tmp_path / "theirs.zarr"
    _new(ours, sim)
    _new(theirs, sim)
    for start, stop in [(0, 4), (4, 8), (8, 10)]:  # the last chunk is an edge chunk
        part = {name: value[start:stop] for name, value in rows.items()}
        ledger = {k: v for k, v in part.items() if k not in ("job_id", "host")}
        write_rows(ours, start, host="node-1", job_id=77, **ledger)
        group = zarr.open_group(theirs, mode="r+", use_consolidated=False)
        for name, value in part.items():
            dtype = {"error": "<U200", "host": "<U64"}.get(name, value.dtype)
            group[name][start:stop] = value.astype(dtype)
    for name in rows:
        files = sorted(
            p.relative_to(theirs) for p in (theirs / name / "c").rglob("*") if p.is_file()
        )
        assert len(files) == 3, name
        for file in files:
            assert (ours / file).read_bytes() == (theirs / file).read_bytes(), file
    ds = open_store(ours)
    for name, value in rows.items():
        expected = value.astype("<U200") if name == "error" else value  # 300 chars truncated
        np.testing.assert_array_equal(ds[name].values, expected)
    # the fast path really ran (it declines, writing nothing, for anything but whole chunks)
    from simulators.store import _write_raw_chunk

    assert _write_raw_chunk(ours, "x", 8, rows["x"][8:10])
    assert not _write_raw_chunk(ours, "x", 2, rows["x"][2:6])
    assert _write_raw_chunk(ours, "host", 0, np.full(4, "node-1", dtype="<U64"))  # zstd too


def test_host_columns_of_different_hosts_are_not_mixed_up(tmp_path, sim):
    path = tmp_path / "hosts.zarr"
    _new(path, sim)
    ok = np.full(4, Status.OK, dtype=np.int8)
    for start, host in [(0, "node-a"), (4, "node-b"), (8, "node-a")]:
        rows = 4 if start < 8 else 2
        write_rows(
            path,
            start,
            theta=np.zeros((rows, 2)),
            x=np.zeros((rows, 2)),
            seed=np.arange(rows, dtype=np.uint64),
            status=ok[:rows],
            host=host,
        )
    hosts = open_store(path)["host"].values
    assert list(hosts) == ["node-a"] * 4 + ["node-b"] * 4 + ["node-a"] * 2
