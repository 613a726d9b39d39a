"""Progress bars for work that runs on a Dask cluster.

A campaign's bar shows done/total, the rows not OK so far, the rate and the elapsed time; the
dashboard URL is printed above it when the campaign starts, and a summary line below at the end.

Where stdout is not a terminal (a SLURM job's output, ``> log``, CI) there is no bar to redraw:
progress is one plain line each time another 5 % is done or 30 s have passed since the last line,
with the rate and the time left, and a last line at the end. A bar thus writes at most
``22 + elapsed / 30 s`` lines: under 45 for a 10-minute stage.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

__all__ = ["PlainProgress", "progress_bar", "campaign_bar"]

PLAIN_STEP = 0.05  # a plain line per 5 % done ...
PLAIN_EVERY_S = 30.0  # ... or per 30 s, whichever comes first


class _RateColumn(ProgressColumn):
    """Units completed per second, averaged over the task's lifetime so far."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.1f}{self.unit}", style="progress.data.speed")


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class PlainProgress:
    """Progress as plain lines, for output that is not a terminal (see the module doc).

    The subset of :class:`rich.progress.Progress` the bars here use: a context manager with
    ``add_task(description, total=..., **fields)`` and ``update(task, advance=..., **fields)``.
    """

    def __init__(self, label: str, unit: str, *, show_failed: bool = False, stream=None) -> None:
        self.label, self.unit, self.show_failed = label, unit, show_failed
        self.stream = stream
        self.lines = 0
        self._tasks: dict[int, dict[str, Any]] = {}

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        for task in self._tasks.values():
            if task["shown"] < task["completed"] or not self.lines:
                self._line(task)

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        """Start counting ``total`` units; returns the task id."""
        began = time.monotonic()
        task = {"total": total, "completed": 0.0, "began": began, "fields": fields}
        task.update(shown=0.0, shown_at=began)
        self._tasks[len(self._tasks)] = task
        return len(self._tasks) - 1

    def update(self, task_id: int, advance: float = 0.0, **fields: Any) -> None:
        """Count ``advance`` more units; print a line when 5 % more are done or 30 s passed."""
        task = self._tasks[task_id]
        task["completed"] += advance
        task["fields"].update(fields)
        total = task["total"] or 0
        step = total * PLAIN_STEP if total else float("inf")
        now = time.monotonic()
        due = now - task["shown_at"] >= PLAIN_EVERY_S
        if task["completed"] - task["shown"] >= step or due or task["completed"] == total:
            self._line(task)

    def _line(self, task: dict[str, Any]) -> None:
        now = time.monotonic()
        done, total, elapsed = task["completed"], task["total"], now - task["began"]
        rate = done / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.label}: {done:g}/{total:g} {self.unit}" if total else f"{done:g}"]
        if total:
            parts[0] += f" ({100 * done / total:.0f}%)"
        if self.show_failed:
            parts.append(f"{task['fields'].get('failed', 0)} not ok")
        parts.append(f"{rate:,.1f}/s")
        parts.append(f"elapsed {_clock(elapsed)}")
        if total and 0 < done < total and rate > 0:
            parts.append(f"about {_clock((total - done) / rate)} left")
        print(", ".join(parts), file=self.stream or sys.stdout, flush=True)
        task["shown"], task["shown_at"] = done, now
        self.lines += 1


def _terminal() -> bool:
    """Whether stdout is a terminal a bar can redraw (rich's judgement: FORCE_TERMINAL etc.)."""
    return Console().is_terminal


def progress_bar(label: str, unit: str, enabled: bool = True) -> Progress | PlainProgress:
    """A rich progress bar ``label ━━━ done/total unit elapsed, time left``, or plain lines
    (with the time left) off a terminal.

    Use as a context manager; ``enabled=False`` shows nothing.
    """
    if enabled and not _terminal():
        return PlainProgress(label, unit)
    return Progress(
        TextColumn(f"[bold]{label}[/bold]"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        disable=not enabled,
    )


def campaign_bar(label: str, enabled: bool = True) -> Progress | PlainProgress:
    """``label ━━━ done/total samples, F not ok, R/s, elapsed``, or plain lines off a terminal.

    Add the task with ``failed=0`` and update that field as chunks come back.
    """
    if enabled and not _terminal():
        return PlainProgress(label, "samples", show_failed=True)
    return Progress(
        TextColumn(f"[bold]{label}[/bold]"),
        BarColumn(bar_width=12),
        MofNCompleteColumn(),
        TextColumn("samples,"),
        TextColumn("{task.fields[failed]} not ok,"),
        _RateColumn("/s"),
        TimeElapsedColumn(),
        disable=not enabled,
    )
