"""TLS is one setting away: ``security: true`` makes every connection tls:// with certificates."""

import pytest
from distributed import Client

from cluster import cluster_client, run_campaign
from simulators import GaussianLinear
from simulators.store import Status, open_store


@pytest.mark.slow
def test_a_tls_cluster_refuses_plain_tcp_clients(tmp_path):
    with cluster_client(
        "local", n_workers=1, dashboard_address="127.0.0.1:0", security=True
    ) as client:
        address = client.scheduler.address
        assert address.startswith("tls://127.0.0.1:")
        assert all(w.startswith("tls://") for w in client.scheduler_info()["workers"])
        run_campaign(
            GaussianLinear(dim=2),
            tmp_path / "t.zarr",
            n_samples=20,
            campaign_seed=1,
            chunk_size=10,
            client=client,
            progress=False,
        )
        with pytest.raises((OSError, TimeoutError)):
            Client(address.replace("tls://", "tcp://"), timeout="3s")
    assert (open_store(tmp_path / "t.zarr")["status"].values == Status.OK).all()
