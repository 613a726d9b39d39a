"""A campaign through dask-jobqueue's SLURMCluster on the real local SLURM."""

import subprocess

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
