"""Cluster profiles: the shipped YAML is valid, loopback by default, errors name the fix."""

import pytest
import yaml

from cluster import LocalProfile, SlurmProfile, load_profile
from cluster.profiles import DEFAULT_PROFILES
from simulators.errors import ConfigError


@pytest.mark.parametrize("name", list(yaml.safe_load(DEFAULT_PROFILES.read_text())))
def test_every_shipped_profile_is_valid(name):
    assert isinstance(load_profile(name), LocalProfile | SlurmProfile)


def test_defaults_bind_to_loopback():
    local, slurm = load_profile("local"), load_profile("slurm-local")
    assert local.host == "127.0.0.1" and local.dashboard_address.startswith("127.0.0.1:")
    assert slurm.scheduler_host == "127.0.0.1" and slurm.interface == "lo"


def test_overrides_apply_and_are_validated():
    assert load_profile("local", n_workers=7).n_workers == 7
    with pytest.raises(ConfigError, match="n_workers"):
        load_profile("local", n_workers=0)
    with pytest.raises(ConfigError, match="cores_per_node"):
        load_profile("slurm", cores_per_node=4)


def test_unknown_profile_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match="known profiles: local, slurm-local, slurm, slurm-gpu"):
        load_profile("pbs")
    own = tmp_path / "mine.yaml"
    own.write_text("gpu:\n  kind: slurm\n  queue: gpu\n  job_extra_directives: ['--gres=gpu:1']\n")
    profile = load_profile("gpu", own)
    assert profile.queue == "gpu" and profile.job_extra_directives == ("--gres=gpu:1",)


def test_slurm_workers_retire_before_the_walltime():
    profile = load_profile("slurm-local", walltime="01:00:00", lifetime_margin="5m")
    assert profile.lifetime_seconds == 3300 and profile.stagger_seconds == 150
    assert profile.worker_lifetime_args() == ["--lifetime", "3300s", "--lifetime-stagger", "150s"]
    short = load_profile("slurm-local", walltime="00:02:00", lifetime="20s", lifetime_stagger="2s")
    assert short.worker_lifetime_args() == ["--lifetime", "20s", "--lifetime-stagger", "2s"]
    assert load_profile("slurm", walltime="1-00:00:00").lifetime_seconds == 86400 - 600


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"walltime": "soon"}, "walltime 'soon' is not a SLURM time limit; write e.g."),
        ({"walltime": "00:04:00"}, "must be positive and end before the walltime '00:04:00'"),
        ({"lifetime": "30m"}, "end before the walltime '00:30:00'"),
        ({"lifetime": "ten minutes"}, "not a duration: 'ten minutes'"),
        ({"minimum_jobs": 3, "maximum_jobs": 2}, "minimum_jobs=3 exceeds maximum_jobs=2"),
    ],
)
def test_bad_lifetime_and_scaling_settings_name_the_fix(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_profile("slurm-local", **overrides)


def test_shipped_real_cluster_profiles_scale_adaptively_with_tls():
    for name in ("slurm", "slurm-gpu"):
        profile = load_profile(name)
        assert profile.adaptive and profile.security and profile.maximum_jobs >= 1
    assert load_profile("slurm-gpu").job_extra_directives == ("--gres=gpu:1",)
    assert not load_profile("slurm-local").adaptive and not load_profile("local").security


@pytest.mark.parametrize("name", ["local", "slurm-local"])
@pytest.mark.parametrize(
    ("given", "bound"),
    [(":0", "127.0.0.1:0"), (":8790", "127.0.0.1:8790"), ("8790", "127.0.0.1:8790")]
    + [("0.0.0.0:8790", "0.0.0.0:8790"), ("10.1.2.3:0", "10.1.2.3:0")],
)
def test_a_dashboard_address_without_a_host_means_loopback(name, given, bound):
    assert load_profile(name, dashboard_address=given).dashboard_address == bound


def test_a_dashboard_on_port_0_listens_on_loopback_only():
    import psutil

    from cluster import cluster_client

    with cluster_client("local", n_workers=1, dashboard_address=":0") as client:
        port = int(client.dashboard_link.split(":")[2].split("/")[0])
        listening = {
            c.laddr.ip
            for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        }
    assert listening == {"127.0.0.1"}


def test_validate_warns_that_a_slurm_profile_cannot_start_where_slurm_is_missing(tmp_path):
    """`emustudy validate` on a machine without SLURM (PATH without sbatch): the config is valid,
    and the user hears at once that its SLURM profile cannot start here and what to do."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).parents[2]
    raw = yaml.safe_load((root / "configs" / "quickstart.yaml").read_text())
    raw["cluster"] = {"profile": "slurm-local"}
    config = tmp_path / "study.yaml"
    config.write_text(yaml.safe_dump(raw))
    found = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", str(config)],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "400", "PATH": str(tmp_path), "PYTHONPATH": str(root)},
    )
    said = found.stdout + found.stderr  # the console writes to stderr
    assert found.returncode == 0, said
    assert "is valid" in said and "sbatch is not on PATH here" in said
    assert "cluster/local_slurm.sh" in said and "profile: local" in said
    local = subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "validate", str(root / "configs/quickstart.yaml")],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        env={"COLUMNS": "400", "PATH": str(tmp_path), "PYTHONPATH": str(root)},
    )
    assert local.returncode == 0 and "is valid" in local.stderr + local.stdout
    assert "warning" not in local.stderr + local.stdout
