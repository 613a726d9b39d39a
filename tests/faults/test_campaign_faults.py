"""Faults of a campaign's store and simulator: chunk sizes that would share chunk files, damaged
chunk files, a full disk, and outputs of the wrong shape or dtype.

Each test checks what was kept: the bytes and modification times of what was stored before, the
rows written before a failure, and the bytes of the store once the campaign is rerun.
"""

import json
import re
import shutil
import subprocess
import sys
import time

import cloudpickle
import numpy as np
import pytest

from cluster import CampaignSettings, cluster_client, run_campaign
from cluster.execute import simulate_chunk, simulate_rows
from cluster.lock import lock_path
from simulators import GaussianLinear, Simulator
from simulators.errors import StoreError
from simulators.store import (
    TIMING_VARIABLES,
    Status,
    create_store,
    load_pairs,
    open_store,
    pending_chunks,
    store_identity,
)

cloudpickle.register_pickle_by_value(sys.modules[__name__])

PER_SAMPLE = ("theta", "x", "seed", "status", "attempts", "error")


@pytest.fixture(scope="module")
def client():
    with cluster_client("local", n_workers=2, dashboard_address="127.0.0.1:0") as client:
        yield client


def _snapshot(store):
    """Bytes and modification time of every file of a store."""
    return {
        str(p.relative_to(store)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(store.rglob("*"))
        if p.is_file()
    }


def _same_files(store, reference):
    """The names of the files whose bytes differ (timing variables aside)."""
    timing = tuple(f"{name}/" for name in TIMING_VARIABLES)

    def files(path):
        return {
            str(p.relative_to(path)): p.read_bytes()
            for p in sorted(path.rglob("*"))
            if p.is_file() and not str(p.relative_to(path)).startswith(timing)
        }

    ours, theirs = files(store), files(reference)
    assert sorted(ours) == sorted(theirs)
    return [name for name in ours if ours[name] != theirs[name]]


def _campaign(sim, path, client, **kwargs):
    options = dict(n_samples=60, campaign_seed=3, chunk_size=10, progress=False)
    return run_campaign(sim, path, client=client, **{**options, **kwargs})


# -- chunk and batch sizes that would make two writers share a chunk file ------------------------


def test_resuming_with_another_chunk_size_is_refused_before_anything_runs(tmp_path, client):
    sim, path = GaussianLinear(dim=2), tmp_path / "s.zarr"
    campaign = {"campaign": CampaignSettings().identity()}
    identity = store_identity(sim, n_samples=60, chunk_size=10, campaign_seed=3, extra=campaign)
    create_store(path, identity, sim.prior.names, sim.output_names)
    for start in (0, 20, 50):  # a campaign interrupted after three chunks
        simulate_chunk(sim, path, start, start + 10, 3)
    before = _snapshot(path)
    for chunk_size in (15, 20, 5):  # not a multiple, a multiple, a divisor of 10
        with pytest.raises(
            StoreError,
            match=rf"chunk_size: stored 10, requested {chunk_size}\).*one whole 10-row chunk "
            r"file.*Resume with chunk_size=10",
        ):
            _campaign(sim, path, client, chunk_size=chunk_size)
        assert _snapshot(path) == before and not lock_path(path).exists()
    assert pending_chunks(path) == [(10, 20), (30, 40), (40, 50)]
    assert _campaign(sim, path, client).chunks_run == 3  # the right size resumes


def test_a_store_rechunked_behind_its_campaign_is_refused(tmp_path, client):
    """Its attributes say 10 rows per chunk, its arrays hold 20: tasks would share files."""
    sim, path = GaussianLinear(dim=2), tmp_path / "s.zarr"
    _campaign(sim, path, client, chunk_size=20)
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["chunk_size"] = 10
    (path / "zarr.json").write_text(json.dumps(meta))
    (path / "status" / "c" / "1").unlink()  # rows 20:40 pending again
    before = _snapshot(path)
    with pytest.raises(
        StoreError, match=r"chunked by 20 rows, but .* chunk_size=10 rows per task.*Nothing was"
    ):
        _campaign(sim, path, client, chunk_size=10)
    assert _snapshot(path) == before and not lock_path(path).exists()


# -- damaged chunk files -------------------------------------------------------------------------


def _truncate(file):
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def _garble(file):
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0x5A  # one byte: the size stays, a float changes
    file.write_bytes(bytes(data))


def _delete(file):
    file.unlink()


@pytest.fixture(scope="module")
def finished(client, tmp_path_factory):
    """A finished 60-row store in 10-row chunks, as reference."""
    path = tmp_path_factory.mktemp("finished") / "ref.zarr"
    _campaign(GaussianLinear(dim=2), path, client)
    return path


def _read_pairs(path):
    return load_pairs(path)


def _read_variable(path, name):
    return open_store(path)[name].values


def _read_training_data(path):
    # imported here: Dask workers import this module to unpickle its simulators, and torch with
    # Lightning would cost them seconds
    from emulators import EmulatorSpec
    from emulators.data import StoreDataModule

    StoreDataModule(path, EmulatorSpec(batch_size=8)).setup()


@pytest.mark.parametrize(
    ("damage", "file", "problem", "readers"),
    [
        (_truncate, "x/c/2/0", "is corrupt or truncated", "pairs variable training"),
        (_garble, "x/c/3/0", "is corrupt or truncated", "pairs variable training"),
        (_garble, "status/c/1", "is corrupt or truncated", "pairs variable training"),
        (_truncate, "host/c/4", "is corrupt or truncated", "variable"),
        # a missing file of done rows would read as its fill value (NaN, 0): every reader fails
        (_delete, "theta/c/5/0", "is missing, but its rows are done", "pairs variable training"),
        (_delete, "seed/c/2", "is missing, but its rows are done", "variable"),
        (_delete, "attempts/c/4", "is missing, but its rows are done", "variable"),
    ],
    ids=[
        "truncated-x",
        "garbled-x",
        "garbled-status",
        "truncated-host",
        "missing-theta",
        "missing-seed",
        "missing-attempts",
    ],
)
def test_a_damaged_chunk_is_an_error_naming_it_and_a_rerun_recomputes_it_alone(
    tmp_path, client, finished, damage, file, problem, readers
):
    path = tmp_path / "s.zarr"
    shutil.copytree(finished, path)
    target = path / file
    damage(target)

    # read as data: an error naming the file, never garbage or NaN rows
    read = {
        "pairs": _read_pairs,
        "variable": lambda path: _read_variable(path, file.split("/")[0]),
        "training": _read_training_data,
    }
    for reader in readers.split():
        with pytest.raises(StoreError, match=re.escape(str(target))):
            read[reader](path)

    # a rerun reports the file and simulates its chunk again, only that one
    damaged = rf"1 chunk files were damaged.*{re.escape(str(target))} {problem}"
    with pytest.warns(UserWarning, match=damaged):
        summary = _campaign(GaussianLinear(dim=2), path, client)
    assert summary.chunks_run == 1 and summary.counts == {"ok": 10}
    assert _same_files(path, finished) == []
    theta, x, counts = load_pairs(path)
    assert counts["ok"] == 60 and np.isfinite(x).all() and np.isfinite(theta).all()


# -- a full disk ---------------------------------------------------------------------------------


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MiB tmpfs (root only; CI runs as root): ``small_disk.grow()`` makes it 64 MiB."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.fail(
            f"could not mount a small tmpfs at {mount} (needs root): {done.stderr.strip()}",
            pytrace=False,
        )

    class Disk:
        path = mount

        @staticmethod
        def grow():
            subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)

    try:
        yield Disk
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _idle(client, timeout=60):
    """Wait until no worker runs a task (chunks cancelled after the failure may still run)."""
    deadline = time.monotonic() + timeout
    while any(client.processing().values()):
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.slow
def test_a_full_disk_stops_with_a_clear_error_and_the_campaign_resumes(
    tmp_path, client, small_disk
):
    # 4 chunks of 2.7 MB, theta and x 1.3 MB each (written while their checksum is computed)
    sim = GaussianLinear(dim=32)
    kwargs = dict(n_samples=20_000, campaign_seed=5, chunk_size=5000)
    _campaign(sim, tmp_path / "ref.zarr", client, **kwargs)
    reference = open_store(tmp_path / "ref.zarr")
    path = small_disk.path / "s.zarr"
    with pytest.raises(StoreError, match=rf"the disk holding {path} is full") as caught:
        _campaign(sim, path, client, **kwargs)
    assert "run the same campaign again" in str(caught.value)
    _idle(client)

    ds = open_store(path)  # still a store, with the rows written intact
    done = ds["status"].values != Status.PENDING
    assert 0 < done.sum() < 20_000
    for name in PER_SAMPLE:
        np.testing.assert_array_equal(ds[name].values[done], reference[name].values[done])
    assert not list(path.rglob("*.partial")) and not lock_path(path).exists()
    left = len(pending_chunks(path))

    small_disk.grow()
    summary = _campaign(sim, path, client, **kwargs)
    assert summary.chunks_run == left and summary.chunks_skipped == 4 - left
    assert summary.counts == {"ok": int((~done).sum())}
    assert _same_files(path, tmp_path / "ref.zarr") == []


# -- outputs of the wrong shape or dtype ---------------------------------------------------------


class _Odd(Simulator):
    """Per row, by theta_0: complex, strings, one value too few, or a good float row."""

    name = "odd"

    def __init__(self):
        self.prior = GaussianLinear(dim=2).prior
        self.output_names = ("a", "b")

    @property
    def settings(self):
        return {}

    def simulate(self, theta, seeds):
        rows = []
        for a, b in theta:
            if a < -0.25:
                rows.append(np.array([a + 1j, b]))
            elif a < -0.1:
                rows.append(np.array([f"{a}", f"{b}"]))
            elif a > 0.25:
                rows.append(np.array([a]))
            else:
                rows.append(np.array([a, b]))
        return rows  # a list of rows of different lengths and dtypes: not one array


@pytest.mark.parametrize("timeout_s", [None, 30.0], ids=["in-process", "isolated"])
def test_outputs_of_the_wrong_dtype_or_shape_are_invalid_rows_not_crashes(timeout_s):
    theta = np.array([[0.0, 0.1], [-0.3, 0.2], [-0.2, 0.3], [0.3, 0.4], [0.1, -0.1]])
    x, status, attempts, error, _ = simulate_rows(
        _Odd(), theta, np.arange(5, dtype=np.uint64), CampaignSettings(timeout_s=timeout_s)
    )
    ok, invalid = [0, 4], [1, 2, 3]
    assert list(status) == [Status.OK, Status.INVALID, Status.INVALID, Status.INVALID, Status.OK]
    assert list(attempts) == [1] * 5  # the same answer again would not help: not retried
    np.testing.assert_array_equal(x[ok], theta[ok])
    assert np.isnan(x[invalid]).all()
    assert error[1].startswith("output dtype complex128 (complex numbers); simulate() must return")
    assert error[2].startswith("output dtype <U")
    assert "not real numbers" in error[2] and "(batch, n_outputs)" in error[2]
    assert error[3].startswith("output shape (1, 1), expected (1, 2): simulate() must return")
    assert error[0] == error[4] == ""


def test_a_campaign_records_wrong_outputs_per_row_and_keeps_the_rest(tmp_path, client):
    path = tmp_path / "odd.zarr"
    with pytest.warns(UserWarning, match="did not simulate cleanly.*first invalid: sample"):
        summary = _campaign(_Odd(), path, client, n_samples=80)
    ds = open_store(path)
    theta, status, error = ds["theta"].values, ds["status"].values, ds["error"].values
    bad = (theta[:, 0] < -0.1) | (theta[:, 0] > 0.25)
    assert bad.any() and (~bad).any()
    assert (status[bad] == Status.INVALID).all() and (status[~bad] == Status.OK).all()
    assert all(e.startswith(("output dtype", "output shape")) for e in error[bad])
    np.testing.assert_array_equal(ds["x"].values[~bad], theta[~bad])
    assert summary.counts == {"ok": int((~bad).sum()), "invalid": int(bad.sum())}
    before = _snapshot(path)
    assert _campaign(_Odd(), path, client, n_samples=80).chunks_run == 0
    assert _snapshot(path) == before  # recorded once, nothing rewritten
