"""Ctrl-C while a local cluster's workers are busy: leaving ``cluster_client`` stops them at once
instead of each nanny's 4 s grace for a worker that does not finish its task."""

from __future__ import annotations

import os
import time

import pytest

from cluster import cluster_client
from cluster.lock import process_alive


def test_ctrl_c_stops_busy_workers_at_once() -> None:
    with pytest.raises(KeyboardInterrupt):
        with cluster_client("local", n_workers=2, dashboard_address="127.0.0.1:0") as client:
            pids = list(client.run(os.getpid).values())
            busy = [client.submit(time.sleep, 600, pure=False) for _ in range(2)]
            deadline = time.monotonic() + 60
            while (
                sum(client.run(lambda dask_worker: dask_worker.state.executing_count).values()) < 2
            ):
                assert time.monotonic() < deadline, "the tasks did not start within 60 s"
                time.sleep(0.05)
            began = time.monotonic()
            raise KeyboardInterrupt
    seconds = time.monotonic() - began
    assert len(busy) == 2 and len(pids) == 2
    # the nanny's grace alone is 4 s; stopping at once takes well under a second
    assert seconds < 2.5, f"{seconds:.1f} s to stop"
    assert not any(process_alive(pid) for pid in pids)
