"""Progress bars for work that runs on a Dask cluster.

The dashboard URL is logged when a cluster or a campaign starts, not squeezed into the bar.
"""

from __future__ import annotations

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["progress_bar"]


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
