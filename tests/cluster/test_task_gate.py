"""Long tasks go to a worker only when it has a free thread: none ever waits in a worker's queue
while another worker could run it, whichever driver thread submitted it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from distributed import Client, LocalCluster, get_worker, wait

from cluster.task_gate import task_gate


def _queued_beside_me(seconds: float) -> tuple[str, int]:
    """Sleep, and say on which worker and how many other tasks sat queued there meanwhile."""
    worker = get_worker()
    most = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        waiting = [ts for ts in worker.state.tasks.values() if ts.state in ("ready", "waiting")]
        most = max(most, len(waiting))
        time.sleep(0.01)
    return worker.address, most


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
    )
    with cluster, Client(cluster) as client:
        yield client


def test_no_task_waits_on_a_busy_worker_and_both_workers_run(client: Client) -> None:
    gate = task_gate(client)
    assert task_gate(client) is gate and gate.capacity() == 2
    futures, most_in_flight = [], 0
    for _ in range(6):
        futures.append(gate.submit(_queued_beside_me, 0.3, pure=False))
        most_in_flight = max(most_in_flight, gate.in_flight)
    results = client.gather(futures)
    assert most_in_flight <= 2
    assert all(queued == 0 for _, queued in results), results
    assert {address for address, _ in results} == set(client.nthreads())
    assert gate.in_flight == 0


def test_two_driver_threads_share_the_workers(client: Client) -> None:
    """As the infer stage's units and the reference's members do."""
    gate, results, errors = task_gate(client), [], []

    def submit_three() -> None:
        try:
            futures = [gate.submit(_queued_beside_me, 0.3, pure=False) for _ in range(3)]
            results.extend(client.gather(futures))
        except Exception as err:  # surfaced below: a thread's exception is otherwise lost
            errors.append(err)

    threads = [threading.Thread(target=submit_three) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(results) == 6
    assert all(queued == 0 for _, queued in results), results


def test_try_submit_refuses_while_every_thread_is_busy(client: Client) -> None:
    gate = task_gate(client)
    busy = [gate.submit(time.sleep, 1.0, pure=False) for _ in range(2)]
    assert gate.try_submit(time.sleep, 0.0, pure=False) is None
    wait(busy)
    assert gate.try_submit(time.sleep, 0.0, pure=False) is not None


def test_an_adaptive_cluster_is_not_gated() -> None:
    """It grows only while tasks wait at the scheduler."""
    cluster = LocalCluster(n_workers=0, processes=False, dashboard_address="127.0.0.1:0")
    with cluster, Client(cluster) as client:
        cluster.adapt(minimum=0, maximum=2)
        assert task_gate(client).capacity() == float("inf")
