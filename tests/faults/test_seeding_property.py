"""Seeding does not depend on scheduling: whatever the worker count, chunk size, batch size and
the order chunks ran in, every sample's bytes are the same, and one index simulated alone gives
its row again; for Gaussian linear and for a vectorised simulator (Lorenz-96)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cluster import CampaignSettings, cluster_client, run_campaign
from cluster.execute import simulate_chunk, simulate_rows
from simulators import GaussianLinear, Stream, make_simulator, sample_seeds
from simulators.store import Status, create_store, open_store, store_identity

N, SEED = 40, 11
SIM = GaussianLinear(dim=3)
PER_SAMPLE = ("theta", "x", "seed", "status")
EXAMPLES = settings(
    max_examples=8,
    deadline=None,
    derandomize=True,  # fixed draws: the same examples in CI and here
    database=None,  # and no example database written into the checkout
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def clients():
    """A one-worker and a two-worker local cluster."""
    with (
        cluster_client("local", n_workers=1, dashboard_address="127.0.0.1:0") as one,
        cluster_client("local", n_workers=2, dashboard_address="127.0.0.1:0") as two,
    ):
        yield {1: one, 2: two}


def _samples(path):
    ds = open_store(path)
    return {name: ds[name].values for name in PER_SAMPLE}


@pytest.fixture(scope="module")
def reference(clients, tmp_path_factory):
    """One chunk, one batch, two workers."""
    path = tmp_path_factory.mktemp("reference") / "ref.zarr"
    run_campaign(
        SIM, path, n_samples=N, campaign_seed=SEED, chunk_size=N, client=clients[2], progress=False
    )
    samples = _samples(path)
    assert (samples["status"] == Status.OK).all()
    return samples


@pytest.mark.slow
@EXAMPLES
@given(
    workers=st.sampled_from([1, 2]),
    chunk_size=st.integers(1, N + 3),
    batch_size=st.none() | st.integers(1, 16),
    order=st.randoms(use_true_random=False),
    share_first=st.floats(0.0, 1.0),
)
def test_every_sample_has_the_same_bytes_whatever_the_schedule(
    clients, reference, tmp_path_factory, workers, chunk_size, batch_size, order, share_first
):
    """A shuffled share of the chunks runs first, one task at a time on the cluster, in that
    order; the campaign then resumes the rest, in parallel on ``workers`` workers."""
    client, path = clients[workers], tmp_path_factory.mktemp("drawn") / "s.zarr"
    campaign = CampaignSettings(batch_size=batch_size)
    identity = store_identity(  # exactly what run_campaign creates
        SIM,
        n_samples=N,
        chunk_size=chunk_size,
        campaign_seed=SEED,
        extra={"campaign": campaign.identity()},
    )
    create_store(path, identity, SIM.prior.names, SIM.output_names)
    chunks = [(start, min(start + chunk_size, N)) for start in range(0, N, chunk_size)]
    order.shuffle(chunks)
    first = chunks[: int(share_first * len(chunks))]
    for start, stop in first:
        client.submit(simulate_chunk, SIM, path, start, stop, SEED, campaign, pure=False).result()
    summary = run_campaign(
        SIM,
        path,
        n_samples=N,
        campaign_seed=SEED,
        chunk_size=chunk_size,
        client=client,
        progress=False,
        settings=campaign,
    )
    assert summary.chunks_run == len(chunks) - len(first)
    samples = _samples(path)
    for name in PER_SAMPLE:
        assert samples[name].tobytes() == reference[name].tobytes(), name


@EXAMPLES
@given(index=st.integers(0, N - 1), timeout_s=st.sampled_from([None, 30.0]))
def test_one_index_simulated_alone_reproduces_its_row(reference, index, timeout_s):
    """From the campaign seed and the index only, in this process or in an isolated child."""
    indices = np.array([index])
    theta = SIM.prior.sample_from_seeds(sample_seeds(SEED, indices, Stream.PRIOR))
    seed = sample_seeds(SEED, indices, Stream.SIMULATION)
    x, status, _, error, _ = simulate_rows(SIM, theta, seed, CampaignSettings(timeout_s=timeout_s))
    assert status[0] == Status.OK and error[0] == ""
    assert theta.tobytes() == reference["theta"][index].tobytes()
    assert seed.tobytes() == reference["seed"][index].tobytes()
    assert x.tobytes() == reference["x"][index].tobytes()
    # the noise depends on the seed: another index's seed gives another row
    other = sample_seeds(SEED, np.array([(index + 1) % N]), Stream.SIMULATION)
    assert simulate_rows(SIM, theta, other, CampaignSettings())[0].tobytes() != x.tobytes()


@pytest.fixture(scope="module")
def l96_reference():
    """A small Lorenz-96 (a vectorised simulator) and 12 of its rows simulated in one call."""
    simulator = make_simulator("lorenz96", K=4, J=8, spinup=0.05, window=0.2, batch_size=7)
    indices = np.arange(12)
    theta = simulator.prior.sample_from_seeds(sample_seeds(SEED, indices, Stream.PRIOR))
    seeds = sample_seeds(SEED, indices, Stream.SIMULATION)
    return simulator, theta, seeds, simulator.simulate(theta, seeds)


@pytest.mark.slow
@EXAMPLES
@given(
    cut=st.integers(0, 12),
    batch_size=st.none() | st.integers(1, 12),
    isolated=st.booleans(),
)
def test_a_vectorised_simulators_rows_do_not_depend_on_the_batching(
    l96_reference, cut, batch_size, isolated
):
    """Lorenz-96 integrates its batch as one array: rows split into two calls at ``cut``, in
    batches of ``batch_size``, in-process or in a child process whose first calls ramp up from
    one row (with a timeout), give the same bytes as all rows in one call."""
    simulator, theta, seeds, reference = l96_reference
    settings = CampaignSettings(batch_size=batch_size, timeout_s=60.0 if isolated else None)
    parts = [
        simulate_rows(simulator, theta[rows], seeds[rows], settings)
        for rows in (slice(0, cut), slice(cut, 12))
        if rows.stop > rows.start
    ]
    x = np.concatenate([part[0] for part in parts])
    status = np.concatenate([part[1] for part in parts])
    assert (status == Status.OK).all()
    assert x.tobytes() == reference.tobytes()
