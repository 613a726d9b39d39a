"""Cluster backends: a registry by profile kind, the ``address`` kind, and room for PBS/LSF."""

import operator
import re
import socket
import textwrap

import pytest
from distributed import LocalCluster

import cluster.backends
from cluster.backends import (
    BACKENDS,
    AddressProfile,
    ClusterProfile,
    LocalBackend,
    SchedulerUnreachableError,
    SlurmBackend,
    backend_for,
    known_kinds,
)
from cluster.client import close_client, cluster_client, make_client
from cluster.profiles import DEFAULT_PROFILES, load_profile
from simulators.errors import ConfigError

LOOPBACK = "127.0.0.1"


def test_the_registry_lists_every_kind_and_each_backend_reads_its_own_profiles():
    assert known_kinds() == ["address", "local", "slurm"]
    for kind, backend in BACKENDS.items():
        assert backend.kind == kind
        assert backend.profile_type.model_fields["kind"].default == kind
    assert isinstance(backend_for(load_profile("local")), LocalBackend)
    assert isinstance(backend_for(load_profile("slurm-local")), SlurmBackend)
    with pytest.raises(TypeError, match="SlurmBackend reads SlurmProfile profiles, got Local"):
        SlurmBackend(load_profile("local"))


def test_an_unknown_kind_lists_the_known_kinds(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text("grid:\n  kind: pbs\n  queue: batch\nbare:\n  n_workers: 2\n")
    known = "known kinds: address, local, slurm"
    with pytest.raises(ConfigError, match=f"'grid' .*unknown cluster profile kind 'pbs'; {known}"):
        load_profile("grid", own)
    with pytest.raises(ConfigError, match=f"unknown cluster profile kind None; {known}"):
        load_profile("bare", own)
    with pytest.raises(ConfigError, match=f"kind 'pbs'; {known}. Set `kind:`"):
        make_client(ClusterProfile(kind="pbs"))


def _commented_address_example() -> str:
    text = DEFAULT_PROFILES.read_text()
    block = text[text.index("# running:") :]
    return "\n".join(line.removeprefix("# ") for line in block.splitlines()) + "\n"


def test_the_shipped_address_example_is_a_valid_profile(tmp_path):
    own = tmp_path / "mine.yaml"
    own.write_text(_commented_address_example())
    profile = load_profile("running", own)
    assert profile == AddressProfile(address="tcp://127.0.0.1:8786", timeout="30s")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"address": "127.0.0.1:8786"}, "not a scheduler address: '127.0.0.1:8786'"),
        ({"address": "http://127.0.0.1:8786"}, "the scheme must be one of tcp, tls"),
        ({"address": "tcp://127.0.0.1"}, "missing port number"),
        ({"address": "tcp://127.0.0.1:8786", "timeout": "soon"}, "not a duration: 'soon'"),
        ({"address": "tcp://127.0.0.1:8786", "n_workers": 2}, "n_workers"),
        ({}, "address"),
    ],
)
def test_bad_address_profiles_name_the_fix(tmp_path, settings, message):
    own = tmp_path / "mine.yaml"
    own.write_text("running:\n  kind: address\n")
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_profile("running", own, **settings)


@pytest.fixture
def running_cluster():
    """A scheduler and one worker on loopback that this test, not emustudy, starts and stops."""
    started = LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,  # threads in this process, but reached over TCP like any scheduler
        protocol="tcp://",
        host=LOOPBACK,
        dashboard_address=f"{LOOPBACK}:0",
    )
    yield started
    started.close()


def test_an_address_profile_uses_a_running_scheduler_and_leaves_it_running(
    running_cluster, tmp_path
):
    address = running_cluster.scheduler_address
    assert address.startswith(f"tcp://{LOOPBACK}:")
    own = tmp_path / "mine.yaml"
    own.write_text(f"running:\n  kind: address\n  address: {address}\n  timeout: 10s\n")
    with cluster_client("running", profiles_file=own) as client:
        assert client.cluster is None  # nothing started, nothing to stop
        assert client.submit(operator.mul, 6, 7).result() == 42
        assert sorted(client.nthreads()) == sorted(running_cluster.scheduler.workers)
    assert client.status == "closed"
    # the scheduler and its worker outlived the client: another client still runs tasks there
    assert running_cluster.scheduler.status.name == "running"
    again = make_client(AddressProfile(address=address, timeout="5s"))
    try:
        assert again.submit(operator.add, 2, 3).result() == 5
    finally:
        close_client(again)
    assert running_cluster.scheduler.status.name == "running"
    assert len(running_cluster.scheduler.workers) == 1


def test_an_unreachable_scheduler_is_an_error_that_says_how_to_start_one():
    with socket.socket() as probe:  # a loopback port that nothing listens on once closed
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    profile = AddressProfile(address=f"tcp://{LOOPBACK}:{port}", timeout="1s")
    unreachable = f"no Dask scheduler answered at tcp://{LOOPBACK}:{port} "
    with pytest.raises(SchedulerUnreachableError, match=unreachable):
        make_client(profile)
    with pytest.raises(OSError, match="dask scheduler --host 127.0.0.1 --port 8786"):
        make_client(profile)


def _docstring_example() -> str:
    """The PBS backend that the ``cluster.backends`` docstring shows, as code."""
    doc = cluster.backends.__doc__
    start = doc.index("``cluster/backends/pbs.py``::") + len("``cluster/backends/pbs.py``::")
    return textwrap.dedent(doc[start : doc.index('and ``"pbs": PBSBackend,``')])


def test_a_pbs_backend_is_the_documented_subclass_and_one_registry_line(monkeypatch, tmp_path):
    namespace: dict = {}
    exec(compile(_docstring_example(), "cluster/backends/pbs.py", "exec"), namespace)
    monkeypatch.setitem(BACKENDS, "pbs", namespace["PBSBackend"])
    own = tmp_path / "mine.yaml"
    own.write_text(
        "pbs:\n  kind: pbs\n  queue: workq\n  walltime: '01:00:00'\n"
        "  resource_spec: select=1:ncpus=1:mem=2GB\n"
    )
    profile = load_profile("pbs", own)
    assert type(profile).__name__ == "PBSProfile" and "pbs" in known_kinds()
    backend = backend_for(profile)
    options = backend.cluster_options()
    assert options["resource_spec"] == "select=1:ncpus=1:mem=2GB"
    assert options["worker_extra_args"] == ["--lifetime", "3300s", "--lifetime-stagger", "150s"]
    assert options["scheduler_options"]["host"] == LOOPBACK
    # the job script dask-jobqueue writes for it (a scheduler starts on loopback; no job runs)
    with backend.cluster_type()(**options) as pbs:
        script = pbs.job_script()
    assert "#PBS -q workq" in script and "#PBS -l select=1:ncpus=1:mem=2GB" in script
    assert "export OMP_NUM_THREADS=1" in script and "--lifetime 3300s" in script
