"""The cost of one Dask task, measured on the worker that runs it: core seconds, not waiting.

:func:`measured` runs a function and returns a :class:`Measured`: its value, the CPU seconds it
spent, its wall seconds and worker-side start and end times (``time.time()``), and the worker's
address, so a stage adds up what its tasks cost and a test can see which tasks ran at once.

What the CPU clock counts, honestly:

* On a worker that runs one task at a time (``threads_per_worker: 1``, every shipped profile),
  the process's CPU time (``time.process_time``) over the task: the task's thread and every
  thread it uses (torch's and BLAS's pools), plus the worker's own communication thread, a small
  overhead of running the task. Time spent queued, waiting for inputs, or waiting for a core
  another process holds, is not CPU time and is not counted.
* On a worker that runs several tasks at once, the process clock would count the neighbours, so
  the task's own thread's CPU time (``time.thread_time``) is used instead; it misses work the
  task hands to other threads of its process (torch's pool: workers run with
  ``OMP_NUM_THREADS=1``, so there is none by default). :attr:`Measured.clock` says which.
* Simulations the task runs in child processes (the guarded simulator of
  :mod:`cluster.guarded`) are not in either clock; the children's own CPU seconds (start-up
  included, read from the operating system) are added (:func:`add_child_seconds`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = ["Measured", "add_child_seconds", "measured", "total_cpu"]

T = TypeVar("T")
_local = threading.local()


@dataclass(frozen=True)
class Measured(Generic[T]):
    """A task's value and what running it cost.

    Attributes
    ----------
    value : T
    cpu_s : float
        Core seconds of the task (see the module doc), child-process simulations included.
    wall_s : float
        Seconds from its start to its end on the worker (inputs already there).
    began, ended : float
        ``time.time()`` on the worker at its start and end.
    worker : str
        The worker's address (``""`` outside a Dask worker).
    clock : str
        ``"process"`` or ``"thread"``: which CPU clock measured it.
    label : str
        What the task was (e.g. ``score-pairs``), for a stage's breakdown.
    """

    value: T
    cpu_s: float
    wall_s: float
    began: float
    ended: float
    worker: str
    clock: str
    label: str = ""


def add_child_seconds(seconds: float) -> None:
    """Count ``seconds`` of work done in a child process for the task running in this thread."""
    _local.child_s = getattr(_local, "child_s", 0.0) + float(seconds)


def _worker() -> tuple[str, int]:
    """This worker's address and how many tasks it runs at once (``("", 0)`` off a worker)."""
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        return "", 0
    return str(worker.address), int(worker.state.nthreads)


def _unwrap(value: Any) -> Any:
    """A dependency's value: the :class:`Measured` results of earlier tasks lose their wrapper."""
    if isinstance(value, Measured):
        return value.value
    if isinstance(value, list):
        return [_unwrap(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_unwrap(item) for item in value)
    return value


def measured(label: str, task: Callable[..., T], *args: Any, **kwargs: Any) -> Measured[T]:
    """Run ``task(*args, **kwargs)`` here and measure it (see the module doc).

    Arguments that are :class:`Measured` (results of earlier tasks, also inside lists and
    tuples) are passed as their values.
    """
    address, nthreads = _worker()
    clock = "process" if nthreads == 1 else "thread"
    cpu = time.process_time if clock == "process" else time.thread_time
    before_child = getattr(_local, "child_s", 0.0)
    began, began_cpu, began_wall = time.time(), cpu(), time.perf_counter()
    value = task(*_unwrap(args), **{key: _unwrap(item) for key, item in kwargs.items()})
    cpu_s = cpu() - began_cpu + getattr(_local, "child_s", 0.0) - before_child
    return Measured(
        value=value,
        cpu_s=cpu_s,
        wall_s=time.perf_counter() - began_wall,
        began=began,
        ended=time.time(),
        worker=address,
        clock=clock,
        label=label,
    )


def total_cpu(results: list[Measured[Any]]) -> float:
    """Core seconds of several tasks together."""
    return float(sum(result.cpu_s for result in results))
