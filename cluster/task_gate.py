"""Long tasks submitted only when a worker thread is free, so none waits behind another.

Dask gives a task without dependencies to the worker with the least estimated occupancy at the
moment it is submitted (a task it has never seen counts as 0.5 s), and later moves queued tasks
only away from a "saturated" worker, one whose queue exceeds 1.9 times the cluster's average
occupancy. On two workers that average includes the queue itself, so with fewer than about 20
tasks no worker is ever saturated: `lorenz96.yaml`'s infer stage put 5 posterior units and 3
reference members, each 8 to 30 minutes, on one worker while the other sat idle for over an
hour. Submitting a long task when a thread is free leaves the choice of worker to the moment the
task can start there.

Adaptive clusters are not gated: they grow only while tasks wait at the scheduler.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any

from distributed import Client, Future

_GATES: weakref.WeakKeyDictionary[Client, TaskGate] = weakref.WeakKeyDictionary()
_GATES_LOCK = threading.Lock()
POLL_S = 1.0
"""How often a waiting submission looks again for workers that joined (they notify nothing)."""


class TaskGate:
    """At most one gated task per worker thread of ``client``'s cluster in flight.

    One gate serves every thread of the driver that submits through it (the reference's members
    and the units' posteriors are submitted from two threads at once).
    """

    def __init__(self, client: Client) -> None:
        self._client = client
        self._changed = threading.Condition(threading.RLock())
        self._futures: set[Future] = set()

    def capacity(self) -> float:
        """The worker threads now in the cluster; unbounded for an adaptive cluster."""
        cluster = getattr(self._client, "cluster", None)
        if getattr(cluster, "_adaptive", None) is not None:  # set by distributed's Cluster.adapt
            return float("inf")
        return float(sum(self._client.nthreads().values()))

    @property
    def in_flight(self) -> int:
        """Gated tasks submitted and not yet finished, failed or cancelled."""
        # A future's state, not a done-callback: the callback runs on another thread after
        # as_completed has handed the future out, and a slot must be free by then.
        with self._changed:  # re-entrant: submit holds it
            self._futures = {future for future in self._futures if not future.done()}
            return len(self._futures)

    def submit(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        """``client.submit(function, *args, **kwargs)`` once fewer tasks are in flight than
        the cluster has worker threads; waits (interruptibly) until then."""
        with self._changed:
            while self.in_flight >= self.capacity():
                self._changed.wait(POLL_S)
            return self._submit(function, *args, **kwargs)

    def try_submit(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future | None:
        """As :meth:`submit` when a worker thread is free now, else ``None`` at once."""
        with self._changed:
            if self.in_flight >= self.capacity():
                return None
            return self._submit(function, *args, **kwargs)

    def _submit(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        future = self._client.submit(function, *args, **kwargs)
        self._futures.add(future)
        future.add_done_callback(self._wake)
        return future

    def _wake(self, _: Future) -> None:
        with self._changed:
            self._changed.notify_all()


def task_gate(client: Client) -> TaskGate:
    """The one gate of ``client``."""
    with _GATES_LOCK:
        gate = _GATES.get(client)
        if gate is None:
            gate = _GATES[client] = TaskGate(client)
        return gate
