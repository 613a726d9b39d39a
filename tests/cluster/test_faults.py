"""Faults: simulators that raise, return NaN or hang; killed workers; retries and timeouts."""

import os
import signal
import sys
import threading
import time

import cloudpickle
import numpy as np
import pytest

from cluster import CampaignSettings, cluster_client, run_campaign
from cluster.execute import NON_FINITE, simulate_rows
from simulators import GaussianLinear, Simulator, Stream, sample_seeds
from simulators.errors import StoreError
from simulators.store import Status, open_store

cloudpickle.register_pickle_by_value(sys.modules[__name__])


class _Faulty(Simulator):
    """Raises for theta_0 < -0.35, NaN for theta_0 > 0.35, hangs (holding the GIL) at one
    theta_0, and fails once, transiently, for theta_1 > 0.5 when run alone (marker files)."""

    name = "faulty"

    def __init__(self, markers=None, hang_at=None):
        self.prior = GaussianLinear(dim=2).prior
        self.output_names = ("a", "b")
        self.markers, self.hang_at = markers, hang_at

    @property
    def settings(self):
        return {}

    def simulate(self, theta, seeds):
        if (theta[:, 0] < -0.35).any():
            raise RuntimeError("solver diverged")
        if self.hang_at is not None and (theta[:, 0] == self.hang_at).any():
            sum(range(10**13))  # one C call: holds the GIL for hours
        if self.markers is not None and len(theta) == 1 and theta[0, 1] > 0.5:
            marker = self.markers / f"{seeds[0]}"
            if not marker.exists():
                marker.touch()
                raise OSError("scratch disk hiccup")
        x = theta.copy()
        x[theta[:, 0] > 0.35] = np.nan
        return x


# rows: ok, raises, NaN, transient when alone, ok
THETA = np.array([[0.1, 0.0], [-0.7, 0.0], [0.5, 0.0], [0.0, 0.6], [0.2, 0.2]])
SEEDS = np.arange(5, dtype=np.uint64)


@pytest.mark.parametrize("timeout_s", [None, 5.0], ids=["in-process", "isolated"])
def test_bad_rows_are_isolated_retried_and_recorded(tmp_path, timeout_s):
    settings = CampaignSettings(retries=2, timeout_s=timeout_s)
    x, status, attempts, error, elapsed = simulate_rows(
        _Faulty(markers=tmp_path), THETA, SEEDS, settings
    )
    assert list(status) == [Status.OK, Status.FAILED, Status.INVALID, Status.OK, Status.OK]
    # the raising row ran 1 + retries times; the transient one needed a second run
    assert list(attempts) == [1, 3, 1, 2, 1]
    assert list(error) == ["", "RuntimeError: solver diverged", NON_FINITE, "", ""]
    np.testing.assert_array_equal(x[[0, 3, 4]], THETA[[0, 3, 4]])
    assert np.isnan(x[[1, 2]]).all()
    assert (elapsed >= 0).all() and elapsed[1] > 0


def test_a_clean_batch_runs_once(tmp_path):
    theta = THETA[[0, 4]]
    _, status, attempts, error, _ = simulate_rows(
        _Faulty(markers=tmp_path), theta, SEEDS[:2], CampaignSettings()
    )
    assert list(status) == [Status.OK, Status.OK] and list(attempts) == [1, 1]
    assert list(error) == ["", ""] and not list(tmp_path.iterdir())


def test_retries_zero_records_the_first_failure(tmp_path):
    _, status, attempts, error, _ = simulate_rows(
        _Faulty(markers=tmp_path), THETA, SEEDS, CampaignSettings(retries=0)
    )
    assert status[3] == Status.FAILED and attempts[3] == 1
    assert error[3] == "OSError: scratch disk hiccup"


def test_a_gil_holding_hang_is_stopped_at_the_timeout(tmp_path):
    theta = np.array([[0.1, 0.0], [0.3, 0.1], [0.2, 0.2]])
    began = time.perf_counter()
    _, status, attempts, error, elapsed = simulate_rows(
        _Faulty(hang_at=0.3), theta, SEEDS[:3], CampaignSettings(timeout_s=0.5, batch_size=3)
    )
    assert list(status) == [Status.OK, Status.TIMEOUT, Status.OK]
    assert list(attempts) == [1, 1, 1] and error[1].startswith("timed out after 0.5 s beyond")
    assert 0.5 <= elapsed[1] < 5
    assert time.perf_counter() - began < 60


@pytest.fixture(scope="module")
def client():
    with cluster_client("local", n_workers=2, dashboard_address="127.0.0.1:0") as client:
        yield client


@pytest.mark.slow
def test_campaign_with_raising_nan_and_hanging_samples(tmp_path, client):
    n, seed = 16, 9
    theta = GaussianLinear(dim=2).prior.sample_from_seeds(
        sample_seeds(seed, np.arange(n), Stream.PRIOR)
    )
    hung = 10
    assert -0.35 <= theta[hung, 0] <= 0.35
    workers = set(client.scheduler_info()["workers"])
    with pytest.warns(UserWarning, match="timed out after 0.5 s"):
        summary = run_campaign(
            _Faulty(markers=tmp_path, hang_at=theta[hung, 0]),
            tmp_path / "f.zarr",
            n_samples=n,
            campaign_seed=seed,
            chunk_size=4,
            client=client,
            progress=False,
            settings=CampaignSettings(retries=1, timeout_s=0.5),
        )
    ds = open_store(tmp_path / "f.zarr")
    status, attempts, error = ds["status"].values, ds["attempts"].values, ds["error"].values
    raises, nan = theta[:, 0] < -0.35, theta[:, 0] > 0.35
    assert raises.any() and nan.any()
    assert status[hung] == Status.TIMEOUT and error[hung].startswith("timed out after 0.5 s beyond")
    assert (status[raises] == Status.FAILED).all() and (attempts[raises] == 2).all()
    assert all(e == "RuntimeError: solver diverged" for e in error[raises])
    assert (status[nan] == Status.INVALID).all() and set(error[nan]) == {NON_FINITE}
    ok = ~raises & ~nan & (np.arange(n) != hung)
    assert (status[ok] == Status.OK).all() and set(error[ok]) == {""}
    np.testing.assert_array_equal(ds["x"].values[ok], theta[ok])
    assert summary.counts == {
        "ok": ok.sum(),
        "failed": raises.sum(),
        "invalid": nan.sum(),
        "timeout": 1,
    }
    # the hang was stopped in a child process: no worker died or restarted
    assert set(client.scheduler_info()["workers"]) == workers
    # and the children the workers kept for the campaign's chunks are gone with it
    children = client.run(lambda: len(__import__("psutil").Process().children()))
    assert set(children.values()) == {0}, children


class _Slow(GaussianLinear):
    def simulate(self, theta, seeds):
        time.sleep(0.2)
        return super().simulate(theta, seeds)


@pytest.mark.slow
def test_a_worker_killed_mid_campaign_loses_nothing(tmp_path, client):
    path = tmp_path / "k.zarr"
    pids = client.run(os.getpid)
    victim_address, victim = sorted(pids.items())[0]
    killed = threading.Event()

    def kill_after_first_chunk():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if (path / "status" / "c").is_dir() and any((path / "status" / "c").iterdir()):
                os.kill(victim, signal.SIGKILL)
                killed.set()
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_after_first_chunk)
    killer.start()
    summary = run_campaign(
        _Slow(dim=2),
        path,
        n_samples=300,
        campaign_seed=2,
        chunk_size=10,
        client=client,
        progress=False,
    )
    killer.join()
    assert killed.is_set()
    assert summary.counts == {"ok": 300}
    ds = open_store(path)
    assert (ds["status"].values == Status.OK).all() and (ds["attempts"].values == 1).all()
    assert victim not in client.run(os.getpid).values()  # it really died mid-campaign
    client.wait_for_workers(2, timeout=60)


def test_changed_retry_settings_on_an_existing_store_are_refused(tmp_path, client):
    path = tmp_path / "s.zarr"
    kwargs = dict(n_samples=20, campaign_seed=1, chunk_size=10, client=client, progress=False)
    run_campaign(GaussianLinear(dim=2), path, **kwargs)
    before = open_store(path)["x"].values.tobytes()
    with pytest.raises(StoreError, match="campaign: stored .*'timeout_s': None.*'timeout_s': 9.0"):
        run_campaign(
            GaussianLinear(dim=2), path, settings=CampaignSettings(timeout_s=9.0), **kwargs
        )
    assert open_store(path)["x"].values.tobytes() == before


class _Chatty(GaussianLinear):
    def simulate(self, theta, seeds):
        print("step 1 of 1")  # Python's stdout
        os.write(1, b"from C code\n")  # straight to file descriptor 1
        return super().simulate(theta, seeds)


def test_prints_of_an_isolated_simulator_do_not_corrupt_its_answers():
    theta = np.zeros((3, 2))
    x, status, _, error, _ = simulate_rows(
        _Chatty(dim=2), theta, SEEDS[:3], CampaignSettings(timeout_s=30.0)
    )
    assert list(status) == [Status.OK] * 3 and list(error) == ["", "", ""]
    np.testing.assert_array_equal(x, GaussianLinear(dim=2).simulate(theta, SEEDS[:3]))
