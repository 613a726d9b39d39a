"""The ``emustudy`` command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from pipelines.config import load_config
from simulators.errors import EmustudyError

__all__ = ["app", "main"]

app = typer.Typer(
    help="Emulator-vs-simulator studies for simulation-based inference.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(
        level=logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
        force=True,
    )
    logging.getLogger("emustudy").setLevel(logging.WARNING if quiet else logging.INFO)
    for noisy in ("distributed", "lightning", "lightning.pytorch", "bokeh", "tornado"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


ConfigArgument = typer.Argument(..., exists=False, help="Study config (YAML).")
OutputDirOption = typer.Option(None, help="Parent folder of the study folder.")
QuietOption = typer.Option(False, "--quiet", "-q", help="No progress bars or info logs.")


@app.command()
def validate(config: Path = ConfigArgument) -> None:
    """Check a study config without running anything."""
    _setup_logging(quiet=True)
    study = load_config(config)
    levels = ", ".join(f"{lvl.name} ({lvl.simplification:g})" for lvl in study.ladder)
    console.print(f"[green]{config} is valid[/green]: study {study.name!r} → {study.study_dir}")
    console.print(f"simulator {study.simulator.name} {study.simulator.settings}; levels: {levels}")


@app.command()
def run(
    config: Path = ConfigArgument,
    output_dir: Path | None = OutputDirOption,
    quiet: bool = QuietOption,
) -> None:
    """Run every stage of a study that is not done yet, then write its report."""
    from pipelines.study import run_study

    _setup_logging(quiet)
    overrides = {"output_dir": output_dir} if output_dir else {}
    study = load_config(config, **overrides)
    result = run_study(study, progress=not quiet)
    console.print(_scores_table(result.layout.report / "scores.csv"))
    console.print(f"[green]done[/green] in {result.seconds:.0f} s; report: {result.report}")


def _scores_table(csv: Path) -> Table:
    frame = pd.read_csv(csv)
    table = Table(title="scores per level (ceiling: posterior trained on the true simulator)")
    for header in ("level", "simpl.", "C2ST (range)", "NLTP", "SBC min p", "emulator NLL"):
        table.add_column(header, justify="left" if header == "level" else "right")
    for row in frame.itertuples(index=False):
        table.add_row(
            row.level,
            "-" if pd.isna(row.simplification) else f"{row.simplification:g}",
            f"{row.c2st_mean:.3f} ({row.c2st_min:.2f}-{row.c2st_max:.2f})",
            f"{row.nltp_mean:.3f}",
            f"{row.sbc_min_pvalue:.3f}",
            "-" if pd.isna(row.emulator_nll_mean) else f"{row.emulator_nll_mean:.3f}",
        )
    return table


def main() -> None:
    """Entry point: user errors become one clear message and exit code 2."""
    try:
        app()
    except EmustudyError as err:
        console.print(f"[red]error:[/red] {err}")
        sys.exit(2)
