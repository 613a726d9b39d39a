"""Start and stop the single-node SLURM of ``cluster/local_slurm.sh`` from Python.

The test suite (the ``slurm_conf`` fixture in ``tests/conftest.py``) and demos use it to get a
real SLURM controller and compute node on this machine, talking over 127.0.0.1 only::

    from cluster.local_slurm import local_slurm

    with local_slurm(Path(".slurm")) as conf:   # sets os.environ["SLURM_CONF"] = conf
        subprocess.run(["sbatch", "--wait", "--wrap", "hostname"], check=True)

Starting needs root (and ``apt-get`` the first time, to install Debian's SLURM and munge
packages); everything else the script does is described in its header comment.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from simulators.errors import EmustudyError

__all__ = [
    "LOCAL_SLURM_SCRIPT",
    "SlurmUnavailableError",
    "start_local_slurm",
    "stop_local_slurm",
    "local_slurm",
]

LOCAL_SLURM_SCRIPT = Path(__file__).with_name("local_slurm.sh")

# A first start runs apt-get (about 10 s on a fast mirror) before the script's own 60 s wait.
_START_TIMEOUT_S = 600.0
# Stopping cancels jobs (up to 30 s) and waits up to 20 s for each daemon.
_STOP_TIMEOUT_S = 180.0
# How much of the script's stderr (apt-get can be chatty) goes into an error message.
_STDERR_LINES = 40


class SlurmUnavailableError(EmustudyError, RuntimeError):
    """The local SLURM could not be started or stopped; the message says why."""


def _run_script(command: str, state_dir: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``local_slurm.sh COMMAND STATE_DIR`` and return its result, whatever its exit status.

    Raises
    ------
    SlurmUnavailableError
        If bash cannot run the script or the script runs longer than ``timeout`` seconds.
    """
    argv = ["bash", str(LOCAL_SLURM_SCRIPT), command, str(state_dir)]
    try:
        return subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except OSError as err:
        raise SlurmUnavailableError(f"cannot run {LOCAL_SLURM_SCRIPT}: {err}") from err
    except subprocess.TimeoutExpired as err:
        raise SlurmUnavailableError(
            f"{LOCAL_SLURM_SCRIPT.name} {command} {state_dir} did not finish within "
            f"{timeout:.0f} s; run `{LOCAL_SLURM_SCRIPT} stop {state_dir}` to clean up"
        ) from err


def _failure(command: str, result: subprocess.CompletedProcess[str]) -> SlurmUnavailableError:
    """The error for a failed script run: its exit status and the tail of its stderr."""
    stderr = "\n".join(result.stderr.strip().splitlines()[-_STDERR_LINES:])
    return SlurmUnavailableError(
        f"{LOCAL_SLURM_SCRIPT.name} {command} failed (exit status {result.returncode}): "
        f"{stderr or 'no message'}"
    )


def start_local_slurm(state_dir: Path) -> Path:
    """Start (or reuse) the local single-node SLURM whose files live in ``state_dir``.

    Parameters
    ----------
    state_dir : Path
        Folder for ``slurm.conf`` and SLURM's state, spool, pid and log files; created if missing.
        Keep it short: SLURM puts Unix sockets in it, whose paths are limited to 107 bytes.

    Returns
    -------
    Path
        The ``slurm.conf`` to put in ``SLURM_CONF`` for ``sbatch``, ``squeue`` and ``sinfo``.

    Raises
    ------
    SlurmUnavailableError
        If SLURM cannot be started: not root, no ``apt-get`` to install it, a port taken, or the
        node not coming up. The message carries the script's stderr.
    """
    state_dir = Path(state_dir).absolute()
    result = _run_script("start", state_dir, _START_TIMEOUT_S)
    if result.returncode != 0:
        raise _failure("start", result)
    for line in reversed(result.stdout.splitlines()):
        if line.startswith("SLURM_CONF="):
            return Path(line.removeprefix("SLURM_CONF="))
    raise SlurmUnavailableError(
        f"{LOCAL_SLURM_SCRIPT.name} start printed no SLURM_CONF= line; stdout was "
        f"{result.stdout!r}, stderr {result.stderr.strip()!r}"
    )


def stop_local_slurm(state_dir: Path) -> None:
    """Cancel the jobs and stop the daemons of the local SLURM in ``state_dir``.

    Stopping something that is not running is not an error.

    Parameters
    ----------
    state_dir : Path
        The folder given to :func:`start_local_slurm`.

    Raises
    ------
    SlurmUnavailableError
        If the script fails, e.g. when not run as root.
    """
    state_dir = Path(state_dir).absolute()
    result = _run_script("stop", state_dir, _STOP_TIMEOUT_S)
    if result.returncode != 0:
        raise _failure("stop", result)


@contextmanager
def local_slurm(state_dir: Path | str) -> Iterator[Path]:
    """Run the local SLURM for the duration of a ``with`` block.

    Parameters
    ----------
    state_dir : Path or str
        Folder for SLURM's files, as in :func:`start_local_slurm`.

    Yields
    ------
    Path
        The ``slurm.conf`` path, also set as ``os.environ["SLURM_CONF"]`` inside the block (the
        previous value is restored afterwards).

    Raises
    ------
    SlurmUnavailableError
        If SLURM cannot be started; whatever a failed start left running is stopped first.
    """
    state_dir = Path(state_dir).absolute()
    try:
        conf = start_local_slurm(state_dir)
    except SlurmUnavailableError:
        with suppress(SlurmUnavailableError):
            stop_local_slurm(state_dir)
        raise
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    try:
        yield conf
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        stop_local_slurm(state_dir)
