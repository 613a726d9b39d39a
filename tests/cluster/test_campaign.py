"""Campaigns on a real local Dask cluster write complete, resumable, schedule-independent stores."""

import sys
import time

import cloudpickle
import numpy as np
import pytest

from cluster import close_client, cluster_client, make_client, run_campaign
from simulators import GaussianLinear, Simulator
from simulators.errors import ConfigError, StoreError
from simulators.store import Status, open_store

# worker processes cannot import this test module: ship its simulator classes by value
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def client():
    with cluster_client("local", n_workers=2, dashboard_address="127.0.0.1:0") as client:
        yield client


@pytest.fixture
def sim():
    return GaussianLinear(dim=3)


def _bytes(path):
    ds = open_store(path)
    return {name: ds[name].values.tobytes() for name in ("theta", "x", "seed", "status")}


def test_campaign_writes_a_complete_store(tmp_path, client, sim):
    summary = run_campaign(
        sim,
        tmp_path / "a.zarr",
        n_samples=1000,
        campaign_seed=4,
        chunk_size=128,
        client=client,
        progress=False,
    )
    assert summary.chunks_total == 8 and summary.chunks_run == 8 and summary.counts == {"ok": 1000}
    ds = open_store(tmp_path / "a.zarr")
    assert (ds["status"].values == Status.OK).all()
    # x follows the model: residuals have the noise variance 0.1
    residual = ds["x"].values - ds["theta"].values
    assert abs(residual.var() - 0.1) < 0.01
    assert (ds["elapsed"].values > 0).all()


def test_rerun_recomputes_nothing(tmp_path, client, sim):
    path = tmp_path / "a.zarr"
    run_campaign(
        sim, path, n_samples=500, campaign_seed=4, chunk_size=100, client=client, progress=False
    )
    before = _bytes(path)
    mtimes = {p: p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()}
    again = run_campaign(
        sim, path, n_samples=500, campaign_seed=4, chunk_size=100, client=client, progress=False
    )
    assert again.chunks_run == 0 and again.chunks_skipped == 5
    assert _bytes(path) == before
    assert {p: p.stat().st_mtime_ns for p in path.rglob("*") if p.is_file()} == mtimes


def test_bytes_do_not_depend_on_chunk_size_or_worker_count(tmp_path, client, sim):
    run_campaign(
        sim,
        tmp_path / "a.zarr",
        n_samples=600,
        campaign_seed=9,
        chunk_size=600,
        client=client,
        progress=False,
    )
    run_campaign(
        sim,
        tmp_path / "b.zarr",
        n_samples=600,
        campaign_seed=9,
        chunk_size=37,
        client=client,
        progress=False,
    )
    one_worker = make_client("local", n_workers=1, dashboard_address="127.0.0.1:0")
    try:
        run_campaign(
            sim,
            tmp_path / "c.zarr",
            n_samples=600,
            campaign_seed=9,
            chunk_size=100,
            client=one_worker,
            progress=False,
        )
    finally:
        close_client(one_worker)
    a, b, c = _bytes(tmp_path / "a.zarr"), _bytes(tmp_path / "b.zarr"), _bytes(tmp_path / "c.zarr")
    assert a == b == c
    run_campaign(
        sim,
        tmp_path / "d.zarr",
        n_samples=600,
        campaign_seed=10,
        chunk_size=100,
        client=client,
        progress=False,
    )
    assert _bytes(tmp_path / "d.zarr")["x"] != a["x"]


def test_a_different_campaign_on_a_store_is_refused(tmp_path, client, sim):
    path = tmp_path / "a.zarr"
    run_campaign(
        sim, path, n_samples=200, campaign_seed=1, chunk_size=100, client=client, progress=False
    )
    before = _bytes(path)
    with pytest.raises(StoreError, match="different campaign"):
        run_campaign(
            sim, path, n_samples=200, campaign_seed=2, chunk_size=100, client=client, progress=False
        )
    with pytest.raises(StoreError, match="simulator_settings"):
        run_campaign(
            GaussianLinear(dim=3, noise_var=0.2),
            path,
            n_samples=200,
            campaign_seed=1,
            chunk_size=100,
            client=client,
            progress=False,
        )
    assert _bytes(path) == before


@pytest.mark.parametrize("kwargs", [{"n_samples": 0}, {"chunk_size": -1}, {"campaign_seed": -3}])
def test_bad_sizes_are_config_errors(tmp_path, client, sim, kwargs):
    settings = {"n_samples": 10, "campaign_seed": 1, "chunk_size": 5, **kwargs}
    with pytest.raises(ConfigError, match="campaign needs"):
        run_campaign(sim, tmp_path / "a.zarr", client=client, progress=False, **settings)
    assert not (tmp_path / "a.zarr").exists()


class _Flaky(Simulator):
    """Fails on batches holding a negative first parameter; NaN for large ones."""

    name = "flaky"

    def __init__(self):
        self.prior = GaussianLinear(dim=2).prior
        self.output_names = ("a", "b")

    @property
    def settings(self):
        return {}

    def simulate(self, theta, seeds):
        if (theta[:, 0] < -0.5).any():
            raise RuntimeError("solver diverged")
        x = theta.copy()
        x[theta[:, 0] > 0.4] = np.nan
        return x


def test_failures_and_invalid_rows_are_recorded_not_fatal(tmp_path, client):
    with pytest.warns(UserWarning, match="solver diverged"):
        summary = run_campaign(
            _Flaky(),
            tmp_path / "f.zarr",
            n_samples=200,
            campaign_seed=3,
            chunk_size=1,
            client=client,
            progress=False,
        )
    ds = open_store(tmp_path / "f.zarr")
    status, theta = ds["status"].values, ds["theta"].values
    failed, invalid = theta[:, 0] < -0.5, theta[:, 0] > 0.4
    assert summary.counts["failed"] == failed.sum() > 0
    assert summary.counts["invalid"] == invalid.sum() > 0
    assert (status[failed] == Status.FAILED).all() and (status[invalid] == Status.INVALID).all()
    assert (status[~failed & ~invalid] == Status.OK).all()


class _Slow(GaussianLinear):
    def simulate(self, theta, seeds):
        time.sleep(0.05)
        return super().simulate(theta, seeds)


def test_dashboard_answers_while_a_campaign_runs(tmp_path, client, poll_dashboard):
    link = client.dashboard_link
    assert link.startswith("http://127.0.0.1:") and link.endswith("/status")
    with poll_dashboard(link) as answers:
        run_campaign(
            _Slow(dim=2),
            tmp_path / "s.zarr",
            n_samples=100,
            campaign_seed=1,
            chunk_size=2,
            client=client,
            progress=False,
        )
    assert len(answers) >= 3 and set(answers) == {200}


def test_worker_environment_does_not_leak_into_the_driver(client):
    import os

    from cluster import WORKER_ENVIRONMENT

    on_workers = client.run(lambda: __import__("os").environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert set(on_workers.values()) == {WORKER_ENVIRONMENT["MALLOC_TRIM_THRESHOLD_"]}
    assert os.environ.get("MALLOC_TRIM_THRESHOLD_") != WORKER_ENVIRONMENT["MALLOC_TRIM_THRESHOLD_"]


def test_workers_wake_their_event_loops_rarely_locally_and_on_slurm(client):
    import dask

    from cluster import WORKER_DASK_SETTINGS
    from cluster.client import slurm_cluster_options
    from cluster.profiles import load_profile

    keys = sorted(WORKER_DASK_SETTINGS)
    on_workers = client.run(lambda: [dask.config.get(key) for key in keys])
    assert all(values == [WORKER_DASK_SETTINGS[k] for k in keys] for values in on_workers.values())
    assert dask.config.get("distributed.admin.tick.interval") != "1s"  # the driver is untouched
    prologue = slurm_cluster_options(load_profile("slurm-local"))["job_script_prologue"]
    assert "export DASK_DISTRIBUTED__ADMIN__TICK__INTERVAL=1s" in prologue
    assert "export DASK_DISTRIBUTED__WORKER__MEMORY__MONITOR_INTERVAL=1s" in prologue


def test_progress_bar_and_dashboard_url_are_shown(tmp_path, client, sim, capsys, caplog):
    with caplog.at_level("INFO", logger="emustudy.cluster"):
        run_campaign(
            sim, tmp_path / "p.zarr", n_samples=300, campaign_seed=1, chunk_size=100, client=client
        )
    shown = capsys.readouterr().out
    assert "p.zarr" in shown and "300/300 samples" in shown
    assert "0 not ok" in shown and "/s" in shown  # failed count and rate on the bar
    assert "done p.zarr: 300 samples simulated (300 ok)" in shown  # the summary at the end
    assert f"dashboard: {client.dashboard_link}" in shown.replace("\n", "")
    assert client.dashboard_link not in caplog.text  # said once, on the console

    with caplog.at_level("INFO", logger="emustudy.cluster"):
        run_campaign(
            sim,
            tmp_path / "q.zarr",
            n_samples=300,
            campaign_seed=1,
            chunk_size=100,
            client=client,
            progress=False,
        )
    assert capsys.readouterr().out == ""  # quiet: nothing on the console, the log has it
    assert client.dashboard_link in caplog.text and "300 samples simulated" in caplog.text
