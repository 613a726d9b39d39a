"""One writer per store: a lock file next to the store, created with ``O_EXCL``.

The lock is ``<store>.lock`` beside the store (not inside it, so that it never touches the
store's bytes) and holds the host, pid, process start and start time of the campaign that writes.
A lock whose holder is gone (same host, pid dead, e.g. after SIGKILL) is taken over with a
warning; a live or remote holder makes the second campaign fail with a :class:`StoreError`.
"""

from __future__ import annotations

import json
import os
import socket
import time
import warnings
from pathlib import Path
from types import TracebackType

from simulators.errors import StoreError

__all__ = ["StoreLock", "lock_path", "process_alive"]


def lock_path(store: Path) -> Path:
    """The lock file of ``store``."""
    store = Path(store)
    return store.with_name(store.name + ".lock")


def _process_start(pid: int) -> str | None:
    """Kernel start time of ``pid`` (tells a reused pid apart), None when unknown or gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]  # a zombie is gone too


def process_alive(pid: int, started: str | None = None) -> bool:
    """Whether process ``pid`` of this host runs (and, given ``started``, is the same process)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    now = _process_start(pid)
    if Path("/proc").is_dir() and now is None:
        return False
    return started is None or now is None or now == started


class StoreLock:
    """Hold the single-writer lock of a store; use as a context manager.

    Parameters
    ----------
    store : Path
        The store to lock; its parent folder is created if missing.

    Raises
    ------
    StoreError
        On entry, if another live campaign (or one on another host) holds the lock.
    """

    def __init__(self, store: Path) -> None:
        self.store, self.path = Path(store), lock_path(store)
        self._mine: dict | None = None

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Create the lock file, taking over a stale one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        mine = {
            "host": socket.gethostname(),
            "pid": pid,
            "process_start": _process_start(pid),
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        }
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._take_over_if_stale()
                continue
            with os.fdopen(fd, "w") as file:
                json.dump(mine, file)
                file.flush()
                os.fsync(file.fileno())
            self._mine = mine
            return
        raise StoreError(f"could not lock {self.store}: {self.path} keeps reappearing")

    def _take_over_if_stale(self) -> None:
        try:
            holder = json.loads(self.path.read_text())
        except FileNotFoundError:
            return  # released meanwhile
        except (OSError, ValueError):
            holder = {}
        if not holder and time.time() - self.path.stat().st_mtime < 10:
            holder = {"host": "?", "pid": "?"}  # being written right now: treat as live
        here = holder.get("host") == socket.gethostname()
        pid = holder.get("pid")
        stale = (
            here and isinstance(pid, int) and not process_alive(pid, holder.get("process_start"))
        )
        if holder and not stale:
            raise StoreError(
                f"{self.store} is being written by another campaign (host {holder.get('host')}, "
                f"pid {pid}, since {holder.get('started', '?')}); only one campaign may write a "
                "store. Wait for it to finish, or use another store path. If that process is "
                f"gone (e.g. its host crashed), delete {self.path} and run again."
            )
        gone = holder or "an empty lock file"
        warnings.warn(
            f"taking over the lock of {self.store} from a campaign that is gone ({gone}); its "
            "finished chunks are kept and the rest is resumed",
            stacklevel=4,
        )
        self.path.unlink(missing_ok=True)

    def release(self) -> None:
        """Remove the lock file if this process still holds it."""
        if self._mine is None:
            return
        try:
            if json.loads(self.path.read_text()) == self._mine:
                self.path.unlink()
        except (OSError, ValueError):
            pass
        self._mine = None
