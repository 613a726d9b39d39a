"""Progress bars for work that runs on a Dask cluster, with the dashboard URL beside them."""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["progress_bar"]


def progress_bar(label: str, unit: str, dashboard: str, enabled: bool = True) -> Progress:
    """A rich progress bar ``label ━━━ done/total unit elapsed dashboard URL``.

    Use as a context manager; ``enabled=False`` shows nothing.
    """
    return Progress(
        TextColumn(f"[bold]{label}[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TextColumn(f"[dim]{dashboard}[/dim]"),
        disable=not enabled,
    )
