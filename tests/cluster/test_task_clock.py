"""The task clock counts the CPU of simulations a task runs in child processes."""

from __future__ import annotations

import time

import numpy as np

from cluster.execute import close_worker_children
from cluster.guarded import GuardedSimulator
from cluster.task_clock import measured
from simulators.registry import make_simulator


def test_a_guarded_simulation_counts_its_child_processes_cpu() -> None:
    """The calling thread only waits on a pipe; the child's start-up and work are counted."""
    simulator = GuardedSimulator(
        make_simulator("gaussian_linear", dim=3), timeout_s=None, retries=0, what="test"
    )
    theta = np.zeros((20_000, 3))
    seeds = np.arange(len(theta), dtype=np.uint64)

    def task() -> float:
        began = time.thread_time()
        simulator.simulate(theta, seeds)
        return time.thread_time() - began

    result = measured("guarded", task)
    assert result.clock == "thread"  # not on a worker: this thread's clock, plus the child's
    assert result.cpu_s > result.value + 0.05


def test_a_kept_child_is_counted_once_per_call() -> None:
    """With reuse_child the child's start-up is counted by the first call only."""
    simulator = GuardedSimulator(
        make_simulator("gaussian_linear", dim=3),
        timeout_s=None,
        retries=0,
        what="test",
        reuse_child=True,
    )
    theta = np.zeros((10, 3))
    seeds = np.arange(len(theta), dtype=np.uint64)
    try:
        first = measured("first", simulator.simulate, theta, seeds)
        second = measured("second", simulator.simulate, theta, seeds)
    finally:
        assert close_worker_children() == 1
    assert first.cpu_s > 0.05  # the child's imports
    assert second.cpu_s < first.cpu_s / 2
