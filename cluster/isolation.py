"""Run a simulator in a child process that can be killed at a timeout.

Dask's nanny workers are daemonic processes, which ``multiprocessing`` forbids to have children,
so the child is a plain ``subprocess`` running this file (importing the whole
``cluster`` package would cost it a second). The parent sends
the cloudpickled simulator once, then one ``(theta, seeds)`` request per call, each as a
length-prefixed pickle over the child's stdin; answers come back over its stdout. A call that
outlives its timeout gets the child SIGKILLed, whatever it was doing (a C loop holding the GIL
included), and the next call starts a fresh child.
"""

from __future__ import annotations

import os
import pickle
import selectors
import struct
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

import cloudpickle
import numpy as np

if TYPE_CHECKING:  # the child runs this file as a script and imports only what it unpickles
    from simulators.base import Simulator

__all__ = ["CallOutcome", "IsolatedSimulator", "Pace", "as_output", "call_in_process", "main"]

_HEADER = struct.Struct("<Q")
_STARTUP_TIMEOUT_S = 120.0  # importing torch in a busy child can take a while; not the sim's time


@dataclass(frozen=True)
class CallOutcome:
    """The result of one simulator call: ``x`` or an error text, whether it timed out, and
    whether the simulator returned something that is not numbers of one shape (``invalid``:
    running it again would not help)."""

    x: np.ndarray | None
    error: str | None = None
    timed_out: bool = False
    seconds: float = 0.0
    invalid: bool = False


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}"


_FIX = "simulate() must return real numbers, an array of shape (batch, n_outputs)"


def as_output(raw: Any) -> tuple[np.ndarray | None, str | None]:
    """A simulator's answer as float64, or None and what is wrong with it.

    Integers, booleans and floats convert; complex numbers, strings, objects that are not
    numbers, and rows of different lengths do not (their conversion would drop or invent data).

    Returns
    -------
    x : (batch, n_outputs) float64 or None
    problem : str or None
    """
    try:
        x = np.asarray(raw)
    except ValueError as err:  # rows of different lengths
        return None, f"output rows of different shapes ({err}); {_FIX}"
    if x.dtype.kind in "biuf":
        return x.astype(np.float64, copy=False), None
    if x.dtype.kind == "O":
        try:
            return np.asarray(x, dtype=np.float64), None
        except (TypeError, ValueError):
            pass
    kind = "complex numbers" if x.dtype.kind == "c" else "not real numbers"
    return None, f"output dtype {x.dtype} ({kind}); {_FIX}"


def call_in_process(simulator: Simulator, theta: np.ndarray, seeds: np.ndarray) -> CallOutcome:
    """Call the simulator here, turning an exception into an error text.

    Parameters
    ----------
    theta : (rows, n_params)
    seeds : (rows,)
    """
    began = time.perf_counter()
    try:
        raw = simulator.simulate(theta, seeds)
    except Exception as err:  # recorded in the ledger, not raised
        return CallOutcome(None, _describe(err), seconds=time.perf_counter() - began)
    x, problem = as_output(raw)
    return CallOutcome(x, problem, seconds=time.perf_counter() - began, invalid=bool(problem))


def _send(stream: BinaryIO, obj: Any) -> None:
    payload = cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)) + payload)
    stream.flush()


def _read_exactly(fd: int, n: int, deadline: float) -> bytes | None:
    """``n`` bytes from ``fd``, or None at the deadline; EOFError if the child is gone."""
    chunks, left = [], n
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while left:
            wait = None if deadline == float("inf") else deadline - time.monotonic()
            if (wait is not None and wait <= 0) or not selector.select(wait):
                return None
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            left -= len(chunk)
    return b"".join(chunks)


class Pace:
    """Seconds per row of a simulator's recent successful calls, for deadlines by pace.

    ``expected(k)`` is ``k`` times the largest seconds per row of the last :attr:`KEEP` calls
    (0 before any); ``next_size(batch)`` ramps a new worker's calls up from 1 row by a factor of
    :attr:`RAMP` to ``batch``, so that no call runs with a deadline guessed without a measurement.
    """

    KEEP = 3
    RAMP = 4

    def __init__(self) -> None:
        self.per_row: list[float] = []
        self.largest_ok = 0

    def record(self, rows: int, seconds: float) -> None:
        """Note a call of ``rows`` rows that succeeded in ``seconds``."""
        self.per_row = [*self.per_row, seconds / max(rows, 1)][-self.KEEP :]
        self.largest_ok = max(self.largest_ok, rows)

    def expected(self, rows: int) -> float:
        """Seconds a call of ``rows`` rows should take, from the recent calls."""
        return rows * max(self.per_row, default=0.0)

    def next_size(self, batch: int) -> int:
        """Rows for the next call: ``batch`` once a call of a quarter of it has succeeded."""
        return max(1, min(batch, self.RAMP * self.largest_ok))


class IsolatedSimulator:
    """A simulator behind a killable child process; use as a context manager.

    Parameters
    ----------
    simulator : Simulator
        Sent to the child once per child start.
    """

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.pace = Pace()  # kept across child restarts: the simulator's speed is the same
        self._child: subprocess.Popen | None = None
        self._counted = 0.0  # the child's CPU seconds already counted for the calling task

    def _count_cpu(self) -> None:
        """Count the child's CPU seconds since the last count for the calling thread's task
        (:func:`cluster.task_clock.add_child_seconds`): its start-up and its simulations."""
        import psutil  # here, not at the top: the child runs this file and needs neither

        from cluster.task_clock import add_child_seconds

        if self._child is None:
            return
        try:
            times = psutil.Process(self._child.pid).cpu_times()
        except psutil.Error:  # it is gone: what it spent since the last count is lost
            return
        spent = times.user + times.system
        add_child_seconds(spent - self._counted)
        self._counted = spent

    def __enter__(self) -> IsolatedSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        self._child = subprocess.Popen(
            [sys.executable, __file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        try:
            _send(self._child.stdin, self.simulator)
            ready = self._receive(time.monotonic() + _STARTUP_TIMEOUT_S)
        except (EOFError, BrokenPipeError):
            ready = "no answer: it exited (see the worker's log for its traceback)"
        if ready != ("ready", None):
            self.close()
            raise RuntimeError(f"the simulator's child process did not start: {ready!r}")
        self._counted = 0.0
        self._count_cpu()

    def _receive(self, deadline: float) -> Any:
        fd = self._child.stdout.fileno()
        header = _read_exactly(fd, _HEADER.size, deadline)
        if header is None:
            return None
        body = _read_exactly(fd, _HEADER.unpack(header)[0], float("inf"))
        return pickle.loads(body)

    def call(self, theta: np.ndarray, seeds: np.ndarray, timeout_s: float) -> CallOutcome:
        """Simulate in the child; kill it if the call takes longer than ``timeout_s``.

        Parameters
        ----------
        theta : (rows, n_params)
        seeds : (rows,)
        """
        if self._child is not None and self._child.poll() is not None:
            self.close()  # it died between calls (e.g. with the thread that started it)
        if self._child is None:
            self._start()
        began = time.perf_counter()
        try:
            _send(self._child.stdin, (theta, seeds))
            answer = self._receive(time.monotonic() + timeout_s)
        except (EOFError, BrokenPipeError):
            code = self._child.wait()
            self._child = None
            return CallOutcome(
                None,
                f"the simulator's process died (exit code {code})",
                seconds=time.perf_counter() - began,
            )
        seconds = time.perf_counter() - began
        self._count_cpu()
        if answer is None:
            self.close()
            return CallOutcome(None, f"timed out after {timeout_s:g} s", True, seconds)
        kind, value = answer
        if kind == "ok":
            return CallOutcome(value, seconds=seconds)
        return CallOutcome(None, value, seconds=seconds, invalid=kind == "invalid")

    def close(self) -> None:
        """Kill the child, if any, and reap it."""
        if self._child is not None:
            self._child.kill()
            self._child.wait()
            for stream in (self._child.stdin, self._child.stdout):
                stream.close()
            self._child = None


def _die_with_parent() -> None:
    # A hung child whose worker died would otherwise spin forever as an orphan (Linux only).
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)


def main() -> None:
    """The child's loop: receive the simulator, then answer ``(theta, seeds)`` requests."""
    _die_with_parent()
    source = sys.stdin.buffer
    # answers go to a private copy of fd 1; whatever the simulator prints (Python or C code)
    # goes to stderr and cannot corrupt them
    sink = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def receive() -> Any:
        header = source.read(_HEADER.size)
        if len(header) < _HEADER.size:
            raise SystemExit(0)  # the parent closed the pipe
        return pickle.loads(source.read(_HEADER.unpack(header)[0]))

    simulator = receive()
    _send(sink, ("ready", None))
    while True:
        theta, seeds = receive()
        outcome = call_in_process(simulator, theta, seeds)
        if outcome.error is None:
            _send(sink, ("ok", outcome.x))
        else:
            _send(sink, ("invalid" if outcome.invalid else "error", outcome.error))


if __name__ == "__main__":
    main()
