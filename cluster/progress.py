"""Progress bars for work that runs on a Dask cluster.

A campaign's bar shows done/total, the rows not OK so far, the rate and the elapsed time; the
dashboard URL is printed above it when the campaign starts, and a summary line below at the end.
"""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

__all__ = ["progress_bar", "campaign_bar"]


class _RateColumn(ProgressColumn):
    """Units completed per second, averaged over the task's lifetime so far."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed or 0.0
        rate = task.completed / elapsed if elapsed > 0 else 0.0
        return Text(f"{rate:,.1f}{self.unit}", style="progress.data.speed")


def progress_bar(label: str, unit: str, enabled: bool = True) -> Progress:
    """A rich progress bar ``label ━━━ done/total unit elapsed``.

    Use as a context manager; ``enabled=False`` shows nothing.
    """
    return Progress(
        TextColumn(f"[bold]{label}[/bold]"),
        BarColumn(bar_width=20),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        disable=not enabled,
    )


def campaign_bar(label: str, enabled: bool = True) -> Progress:
    """``label ━━━ done/total samples, F not ok, R/s, elapsed``.

    Add the task with ``failed=0`` and update that field as chunks come back.
    """
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
