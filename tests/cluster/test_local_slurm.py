"""The local single-node SLURM (cluster/local_slurm.sh) really schedules and runs jobs."""

from __future__ import annotations

import functools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from cluster import local_slurm
from cluster.local_slurm import SlurmUnavailableError, start_local_slurm, stop_local_slurm

USABLE_NODE_STATES = {"idle", "mixed", "allocated", "completing"}


def _squeue_job_ids() -> list[str]:
    result = subprocess.run(
        ["squeue", "-h", "-o", "%i"], capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout.split()


@pytest.mark.slurm
def test_sinfo_shows_the_node_ready(slurm_conf: Path) -> None:
    assert os.environ["SLURM_CONF"] == str(slurm_conf)
    result = subprocess.run(
        ["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, check=True, timeout=30
    )
    states = result.stdout.split()
    assert states, f"sinfo lists no node: {result.stdout!r} {result.stderr!r}"
    assert set(states) <= USABLE_NODE_STATES


@pytest.mark.slurm
def test_sbatch_wait_runs_a_job_that_writes_a_file(tmp_path: Path) -> None:
    result_file = tmp_path / "result.txt"
    job_script = tmp_path / "job.sh"
    job_script.write_text(
        "#!/bin/bash\n"
        "#SBATCH --job-name=emustudy-test\n"
        f"#SBATCH --output={tmp_path}/job-%j.out\n"
        "#SBATCH --time=00:02:00\n"
        "#SBATCH --ntasks=1\n"
        "#SBATCH --mem=100M\n"
        f'echo "ran as SLURM job $SLURM_JOB_ID" > "{result_file}"\n'
    )

    result = subprocess.run(
        ["sbatch", "--wait", "--parsable", str(job_script)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    job_id = result.stdout.strip().split(";")[0]
    assert job_id.isdigit()
    assert result_file.read_text() == f"ran as SLURM job {job_id}\n"


@pytest.mark.slow
@pytest.mark.slurm
def test_dask_jobqueue_runs_a_task_in_a_slurm_job(tmp_path: Path) -> None:
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    jobs_before = set(_squeue_job_ids())
    # The workers listen on lo; the scheduler (and its dashboard) on 127.0.0.1. Giving "host"
    # stops dask-jobqueue from also passing interface="lo" to the scheduler, which clashes.
    with SLURMCluster(
        cores=1,
        processes=1,
        memory="1GB",
        queue="debug",
        walltime="00:10:00",
        interface="lo",
        scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0"},
        log_directory=str(tmp_path),
    ) as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        cluster.scale(jobs=1)
        with Client(cluster) as client:
            assert client.submit(sum, [1, 2]).result(timeout=120) == 3
            workers = client.scheduler_info()["workers"]
            assert workers and all(address.startswith("tcp://127.0.0.1:") for address in workers)

    # Closing the cluster cancels its job.
    deadline = time.monotonic() + 60
    while set(_squeue_job_ids()) - jobs_before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not set(_squeue_job_ids()) - jobs_before


def test_start_as_non_root_fails_and_says_root_is_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() == 0:
        # Really run the script as "nobody": from a copy it can read, with subprocess dropping
        # the user, group and supplementary groups of the process it starts.
        try:
            nobody = pwd.getpwnam("nobody")
        except KeyError:
            pytest.skip("no user 'nobody' to run the script as")
        as_nobody = functools.partial(
            subprocess.run, user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[]
        )
        monkeypatch.setattr(local_slurm.subprocess, "run", as_nobody)
    with tempfile.TemporaryDirectory(prefix="emustudy-slurm-") as public:
        os.chmod(public, 0o755)
        script = Path(shutil.copy(local_slurm.LOCAL_SLURM_SCRIPT, public))
        script.chmod(0o755)
        monkeypatch.setattr(local_slurm, "LOCAL_SLURM_SCRIPT", script)
        state_dir = Path(public) / "state"

        with pytest.raises(SlurmUnavailableError, match="needs root") as excinfo:
            start_local_slurm(state_dir)

        assert "exit status 2" in str(excinfo.value)
        assert not state_dir.exists()


def test_stop_is_a_no_op_when_nothing_runs(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("stopping the local SLURM needs root")
    stop_local_slurm(tmp_path / "never-started")
    assert not (tmp_path / "never-started").exists()


@pytest.mark.slurm
def test_preflight_finds_the_profiles_partition_and_names_a_missing_one(slurm_conf: Path) -> None:
    from cluster import load_profile
    from cluster.preflight import profile_problems

    assert profile_problems(load_profile("slurm-local")) == []
    (problem,) = profile_problems(load_profile("slurm-local", queue="nosuch"))
    assert "queue: nosuch" in problem and "debug" in problem and "set `queue:`" in problem
