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
    with pytest.raises(ConfigError, match="known profiles: local, slurm-local, slurm"):
        load_profile("pbs")
    own = tmp_path / "mine.yaml"
    own.write_text("gpu:\n  kind: slurm\n  queue: gpu\n  job_extra_directives: ['--gres=gpu:1']\n")
    profile = load_profile("gpu", own)
    assert profile.queue == "gpu" and profile.job_extra_directives == ("--gres=gpu:1",)
