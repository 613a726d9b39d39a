"""Security of configs, clusters and files (issue 7).

* YAML is loaded safely: Python tags are refused and run nothing; a simulator is a registered
  name, never an import path, and naming one imports nothing.
* Dask schedulers, workers and dashboards bind to loopback unless a profile says otherwise (and
  then with TLS). tests/cluster/test_security.py shows a TLS cluster refusing plain TCP.
* Stores, study folders and TLS keys are not group- or world-writable, even under umask 0.
"""

from __future__ import annotations

import os
import socket
import stat
import sys
from pathlib import Path
from urllib.parse import urlparse

import dask
import numpy as np
import psutil
import pytest
import yaml

from cluster import run_campaign
from cluster.client import close_client, make_client, slurm_cluster_options
from cluster.profiles import DEFAULT_PROFILES, LocalProfile, SlurmProfile, load_profile
from pipelines.cli import main
from pipelines.config import load_config
from pipelines.study import run_stages
from simulators import ConfigError, GaussianLinear, make_simulator
from simulators.registry import BUILTIN_SIMULATORS
from simulators.store import Status, open_store

BUILT_INS = ", ".join(sorted(BUILTIN_SIMULATORS))
LOOPBACK = "127.0.0.1"
CONFIG = """\
name: safe
output_dir: {output_dir}
simulator:
  name: {simulator}
  settings: {settings}
budgets: {{train: 40, test: 20, observations: 2, chunk_size: 20}}
ladder:
  - {{name: only, simplification: 0, emulator: {{family: gaussian}}}}
"""


@pytest.fixture
def marker_module(tmp_path, monkeypatch):
    """A module ``emustudy_marker`` on sys.path whose import writes the file it returns."""
    marker = tmp_path / "imported"
    (tmp_path / "emustudy_marker.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        "def Model(**settings):\n    raise RuntimeError('must never be called')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield marker
    assert "emustudy_marker" not in sys.modules
    assert not marker.exists(), "a config made emustudy import a module"


def _config_text(tmp_path: Path, simulator: str = "gaussian_linear", settings: str = "{dim: 2}"):
    return CONFIG.format(output_dir=tmp_path / "studies", simulator=simulator, settings=settings)


TAGS = {
    "object/apply": "!!python/object/apply:os.system ['touch {marker}']",
    "name": "!!python/name:os.system",
    "object/new": "!!python/object/new:subprocess.Popen [['touch', '{marker}']]",
    "module": "!!python/module:emustudy_marker",
}


@pytest.mark.parametrize("tag", TAGS.values(), ids=TAGS.keys())
def test_python_tags_in_a_config_are_refused_and_run_nothing(tmp_path, marker_module, tag):
    value = tag.format(marker=marker_module)
    path = tmp_path / "evil.yaml"
    path.write_text(_config_text(tmp_path, settings=f"\n    dim: {value}"))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path} is not valid YAML for a study config: line 6 has a Python tag" in message
    assert tag.split(":")[1].split(" ")[0] in message  # e.g. python/object/apply
    assert "which would run Python code and is refused. Remove the tag" in message


def test_the_command_line_refuses_a_python_tag_without_a_traceback(
    tmp_path, marker_module, capsys, monkeypatch
):
    path = tmp_path / "evil.yaml"
    tag = TAGS["object/apply"].format(marker=marker_module)
    path.write_text(_config_text(tmp_path, settings=f"\n    dim: {tag}"))
    monkeypatch.setattr(sys, "argv", ["emustudy", "run", str(path)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"error: {path} is not valid YAML for a study config: line 6 has a Python tag" in err
    assert not (tmp_path / "studies").exists()  # nothing ran


IMPORT_PATHS = [
    "os.system",
    "logging.os.system",
    "simulators.lorenz96:Lorenz96",
    "simulators.lorenz96.Lorenz96",
    "emustudy_marker:Model",
    "emustudy_marker.Model",
    "emustudy_marker",
]


@pytest.mark.parametrize("name", IMPORT_PATHS)
def test_a_simulator_named_by_import_path_is_refused_and_nothing_is_imported(
    tmp_path, marker_module, name
):
    for where, text in (
        ("simulator.name", _config_text(tmp_path, simulator=name)),
        (
            "a reduced_simulator level",
            _config_text(tmp_path).replace(
                "emulator: {family: gaussian}",
                f"kind: reduced_simulator, simulator: {{name: '{name}'}}",
            ),
        ),
    ):
        path = tmp_path / "study.yaml"
        path.write_text(text)
        with pytest.raises(ConfigError) as info:
            load_config(path)
        message = str(info.value)
        assert f"unknown simulator {name!r}; known simulators: {BUILT_INS}." in message, where
        hint = "chosen by registered name, not by Python import path" in message
        assert hint == ("." in name or ":" in name), where
    with pytest.raises(ConfigError, match=f"unknown simulator {name!r}"):
        make_simulator(name)


def _other_addresses() -> list[str]:
    """This machine's IPv4 addresses that are not loopback (where a remote peer would connect)."""
    return [
        entry.address
        for entries in psutil.net_if_addrs().values()
        for entry in entries
        if entry.family == socket.AF_INET and not entry.address.startswith("127.")
    ]


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.mark.slow
def test_a_local_cluster_listens_on_loopback_only():
    client = make_client("local", n_workers=1)  # the profile's host and dashboard defaults
    try:
        info = client.scheduler_info()
        endpoints = [client.scheduler.address, *info["workers"]]
        endpoints += [worker["nanny"] for worker in info["workers"].values()]
        dashboard = urlparse(client.dashboard_link)
        assert dashboard.hostname == LOOPBACK
        ports = [dashboard.port]
        for address in endpoints:
            assert address.startswith(f"tcp://{LOOPBACK}:"), address
            ports.append(int(address.rsplit(":", 1)[1]))
        assert all(_accepts(LOOPBACK, port) for port in ports)
        for host in _other_addresses():  # the same ports from the machine's network address
            assert not any(_accepts(host, port) for port in ports), host
    finally:
        close_client(client)


def test_every_shipped_profile_binds_to_loopback_or_uses_tls():
    profiles = yaml.safe_load(DEFAULT_PROFILES.read_text())
    assert LocalProfile().host == LOOPBACK
    assert urlparse(f"//{LocalProfile().dashboard_address}").hostname == LOOPBACK
    defaults = slurm_cluster_options(SlurmProfile())
    assert defaults["scheduler_options"] == {"dashboard_address": "127.0.0.1:0", "host": LOOPBACK}
    assert defaults["interface"] == "lo" and defaults["security"] is None
    assert {"local", "slurm-local", "slurm"} <= set(profiles)
    for name in profiles:
        profile = load_profile(name)
        if profile.kind == "local":
            host, dashboard = profile.host, profile.dashboard_address
        else:
            options = slurm_cluster_options(profile)["scheduler_options"]
            host, dashboard = options.get("host"), options["dashboard_address"]
        assert urlparse(f"//{dashboard}").hostname == LOOPBACK, name
        # a scheduler on the cluster network is configured on purpose, and then with TLS
        assert host == LOOPBACK or profile.security, name


def _modes(folder: Path) -> dict[str, int]:
    return {
        str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode)
        for path in [folder, *folder.rglob("*")]
    }


@pytest.fixture
def umask_zero():
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def test_tls_keys_of_a_slurm_cluster_are_private_and_it_listens_on_loopback(tmp_path, umask_zero):
    from dask_jobqueue import SLURMCluster

    options = slurm_cluster_options(load_profile("slurm-local", security=True))
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    with (
        dask.config.set({"jobqueue.slurm.shared-temp-directory": str(shared)}),
        SLURMCluster(**options) as cluster,  # no job is submitted: scale is never called
    ):
        assert cluster.scheduler_address.startswith(f"tls://{LOOPBACK}:")
        assert urlparse(cluster.dashboard_link).hostname == LOOPBACK
        script = cluster.job_script()
        assert "--interface lo" in script and "--tls-key" in script
        written = {path.name: path.read_text() for path in shared.iterdir()}
        modes = _modes(shared)
    keys = [name for name, text in written.items() if "PRIVATE KEY" in text]
    assert keys and len(written) >= 2  # the workers' key and certificate
    for name in written:
        assert modes[name] == 0o600, (name, oct(modes[name]))


def _umask_now() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


@pytest.mark.slow
def test_stores_and_study_folders_are_not_writable_by_others_under_umask_zero(tmp_path, umask_zero):
    client = make_client("local", n_workers=1, dashboard_address="127.0.0.1:0")
    try:
        assert set(client.run(_umask_now).values()) == {0}  # workers inherited umask 0
        store = tmp_path / "direct" / "campaign.zarr"
        run_campaign(
            GaussianLinear(dim=2),
            store,
            n_samples=40,
            campaign_seed=1,
            chunk_size=20,
            client=client,
            progress=False,
        )
        client.run(os.umask, 0)  # as if the workers had never written
        config_path = tmp_path / "study.yaml"
        config_path.write_text(_config_text(tmp_path))
        config = load_config(config_path)
        run_stages(config, ["simulate"], [], client=client, progress=False)
    finally:
        close_client(client)
    assert _umask_now() == 0  # the caller's umask is restored
    assert (open_store(store)["status"].values == Status.OK).all()
    direct, study = _modes(tmp_path / "direct"), _modes(tmp_path / "studies")
    assert "campaign.zarr/x/c/1/0" in direct  # a chunk file a worker wrote
    for written in ("safe", "safe/study.yaml", "safe/simulations/manifest.json"):
        assert written in study
    assert "safe/simulations/test.zarr/theta/c/0/0" in study
    for name, modes in (("store", direct), ("study folder", study)):
        loose = {path: oct(mode) for path, mode in modes.items() if mode & 0o022}
        assert not loose, f"group- or world-writable in the {name}: {loose}"
    assert np.isfinite(
        open_store(config.study_dir / "simulations" / "train.zarr")["x"].values
    ).all()
