"""A campaign through dask-jobqueue's SLURMCluster on the real local SLURM."""

import subprocess
import time

import numpy as np
import pytest

from cluster import cluster_client, run_campaign
from simulators import GaussianLinear
from simulators.store import Status, open_store

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def test_campaign_on_slurm_writes_a_complete_store(tmp_path, poll_dashboard):
    sim = GaussianLinear(dim=4)
    with cluster_client("slurm-local", jobs=2, log_directory=str(tmp_path / "logs")) as client:
        client.wait_for_workers(2, timeout=300)
        workers = client.scheduler_info()["workers"]
        assert all(address.startswith("tcp://127.0.0.1:") for address in workers)
        jobs = subprocess.run(
            ["squeue", "-h", "-o", "%j %T"], capture_output=True, text=True, check=True
        )
        assert jobs.stdout.count("RUNNING") >= 2, jobs.stdout
        assert client.dashboard_link.startswith("http://127.0.0.1:")
        with poll_dashboard(client.dashboard_link) as answers:
            summary = run_campaign(
                sim,
                tmp_path / "slurm.zarr",
                n_samples=2000,
                campaign_seed=5,
                chunk_size=100,
                client=client,
                progress=False,
            )
        assert answers and set(answers) == {200}
        assert summary.chunks_run == 20 and summary.counts == {"ok": 2000}
        # the workers really ran inside SLURM jobs
        env = client.run(lambda: __import__("os").environ.get("SLURM_JOB_ID"))
        assert all(job_id for job_id in env.values()), env
    ds = open_store(tmp_path / "slurm.zarr")
    assert (ds["status"].values == Status.OK).all()
    assert np.isfinite(ds["x"].values).all()
    # the same campaign on a local cluster gives the same bytes
    with cluster_client("local", n_workers=1, dashboard_address="127.0.0.1:0") as local:
        run_campaign(
            sim,
            tmp_path / "local.zarr",
            n_samples=2000,
            campaign_seed=5,
            chunk_size=500,
            client=local,
            progress=False,
        )
    assert open_store(tmp_path / "local.zarr")["x"].values.tobytes() == ds["x"].values.tobytes()


def test_lorenz96_campaign_outlives_its_workers_with_adaptive_scaling(tmp_path):
    """Workers retire after 7-9 s (lifetime < campaign: ~15 s of simulation alone); fresh
    SLURM jobs replace them and every sample ends up done exactly once."""
    import dask

    from simulators import make_simulator

    sim = make_simulator("lorenz96")  # ~10 ms per sample vectorised (FACTS.md)
    n, chunk = 1500, 20
    # the cluster restarts a lost worker's job after this delay (default 15 s)
    with dask.config.set({"distributed.deploy.lost-worker-timeout": "1s"}):
        with cluster_client(
            "slurm-local",
            walltime="00:02:00",
            lifetime="8s",
            lifetime_stagger="1s",
            minimum_jobs=1,
            maximum_jobs=2,
            log_directory=str(tmp_path / "logs"),
        ) as client:
            began = time.perf_counter()
            summary = run_campaign(
                sim,
                tmp_path / "l96.zarr",
                n_samples=n,
                campaign_seed=3,
                chunk_size=chunk,
                client=client,
                progress=False,
            )
            seconds = time.perf_counter() - began
    ds = open_store(tmp_path / "l96.zarr")
    status, attempts, job_ids = ds["status"].values, ds["attempts"].values, ds["job_id"].values
    assert summary.counts == {"ok": n} and (status == Status.OK).all()
    assert (attempts == 1).all() and np.isfinite(ds["x"].values).all()
    # rows were written from inside SLURM jobs, and more jobs than the 2 running at a time
    # took part: workers retired and were replaced while the campaign ran
    assert (job_ids > 0).all()
    print(f"{seconds:.1f} s, SLURM jobs {sorted(set(job_ids))}")
    assert seconds > 9 and len(set(job_ids)) >= 3, (seconds, sorted(set(job_ids)))
