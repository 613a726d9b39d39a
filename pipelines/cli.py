"""The ``emustudy`` command line."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.table import Table

from pipelines.config import StudyConfig, load_config
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


def _load(config: Path, output_dir: Path | None, force: bool = True) -> StudyConfig:
    """The study config, with ``--output-dir`` replacing its ``output_dir`` when given; its
    budgets are checked against this machine unless ``force``."""
    return load_config(config, force=force, **({"output_dir": output_dir} if output_dir else {}))


ConfigArgument = typer.Argument(..., exists=False, help="Study config (YAML).")
ForceOption = typer.Option(
    False,
    "--force",
    help="Run even when the budgets' estimated memory or disk exceed this machine's.",
)
OutputDirOption = typer.Option(None, help="Parent folder of the study folder.")
QuietOption = typer.Option(False, "--quiet", "-q", help="No progress bars or info logs.")
ObservationFileOption = typer.Option(
    ..., help="Observed outputs (CSV, NPY, NetCDF, Zarr), one row per observation."
)
SamplesOutOption = typer.Option(None, help="CSV to write (default: <study>/samples/).")


def _truth_line(study: StudyConfig) -> str:
    """What the study scores against: its reference posterior and its observations."""
    kind = study.reference_kind
    made = {
        "exact": "the simulator's exact posterior",
        "likelihood": "checked MCMC on the simulator's own log-likelihood",
        "simulation": f"{study.reference.members} checked NPE members on a campaign of its own, "
        f"{study.reference_budget:,} runs ({study.reference_budget / study.budgets.train:g}x "
        "budgets.train)",
        "samples": f"draws from {study.reference.samples}",
    }[kind]
    observed = (
        f"{study.n_observations} simulated at prior draws"
        if study.observations is None
        else f"{study.n_observations} from {study.observations.file}"
    )
    return f"reference: {kind} ({made}); observations: {observed}"


@app.command()
def validate(config: Path = ConfigArgument, force: bool = ForceOption) -> None:
    """Check a study config, and that its budgets fit this machine, without running anything."""
    from pipelines.budgets import estimate_budgets

    _setup_logging(quiet=True)
    study = load_config(config, force=force)
    levels = ", ".join(f"{lvl.name} ({lvl.simplification:g})" for lvl in study.ladder)
    console.print(f"[green]{config} is valid[/green]: study {study.name!r} → {study.study_dir}")
    console.print(f"simulator {study.simulator.name} {study.simulator.settings}; levels: {levels}")
    from pipelines.units import skipped_units

    console.print(f"inference methods: {', '.join(study.inference.methods)}")
    if (sweep := study.misspecification) is not None:
        console.print(
            f"misspecification: {sweep.knob} at {', '.join(f'{d:g}' for d in sweep.degrees)}; "
            f"{sweep.observations} observations per degree ({sweep.mcmc_observations} for "
            "methods that run MCMC per observation)"
        )
    for level, method, reason in skipped_units(study):
        console.print(f"  {method} is left out for {level}: {reason}")
    console.print(_truth_line(study), soft_wrap=True, highlight=False)
    console.print(f"{estimate_budgets(study, measure=True)}", soft_wrap=True, highlight=False)
    console.print(_cost_table(study))
    from cluster.preflight import profile_problems
    from cluster.profiles import load_profile

    cluster = study.cluster
    profile = load_profile(cluster.profile, cluster.profiles_file, **cluster.overrides)
    for problem in profile_problems(profile):
        console.print(f"[yellow]warning:[/yellow] {problem}", soft_wrap=True, highlight=False)


@app.command()
def run(
    config: Path = ConfigArgument,
    output_dir: Path | None = OutputDirOption,
    quiet: bool = QuietOption,
    force: bool = ForceOption,
    target: bool = typer.Option(
        False,
        "--target",
        help="Bisect each sweep for where report.quality_score crosses report.quality_target, "
        "running only the levels the bisection needs (no ceiling, no report).",
    ),
) -> None:
    """Run every stage of a study that is not done yet, then write its report."""
    from pipelines.study import run_study

    _setup_logging(quiet)
    study = _load(config, output_dir, force)
    if target:
        from pipelines.adaptive import print_adaptive, run_adaptive

        with _interruptible(study):
            print_adaptive(Console(), run_adaptive(study, progress=not quiet), study)
        return
    with _interruptible(study):
        result = run_study(study, progress=not quiet)
    _print_wide(_scores_table(result.layout.report / "scores.csv"))
    console.print(f"[green]done[/green] in {result.seconds:.0f} s; report: {result.report}")


LevelOption = typer.Option(
    None,
    "--level",
    "-l",
    help="Level name, or its number from 0 in ladder order (the ceiling is last); repeatable. "
    "Default: every level.",
)
ProfileOption = typer.Option(
    None, help="Cluster profile to run on instead of the config's (e.g. inside a SLURM job)."
)
WorkersOption = typer.Option(None, min=1, help="Dask workers of a local profile.")
ReplaceStaleOption = typer.Option(
    False,
    "--replace-stale",
    help="Move outputs a different config made into <study>/stale/ and recompute them, "
    "instead of refusing.",
)


class _Terminated(KeyboardInterrupt):
    """SIGTERM (``scancel``, a SLURM walltime, ``kill``), raised where Ctrl-C's KeyboardInterrupt
    is, so that it takes the same clean stop: workers killed, dashboard record and locks removed."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


@contextmanager
def _interruptible(study: StudyConfig) -> Iterator[None]:
    """Ctrl-C or SIGTERM: one line on what is kept, exit status 130 or 143 (the cluster is
    already stopped)."""
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    except KeyboardInterrupt as stop:
        terminated = isinstance(stop, _Terminated)
        console.print(
            f"[yellow]{'terminated (SIGTERM)' if terminated else 'interrupted'}[/yellow]: "
            f"finished outputs in {study.study_dir} are kept; "
            "run the same command again to go on from them (`emustudy status` shows them)",
            soft_wrap=True,
            highlight=False,
        )
        raise typer.Exit(143 if terminated else 130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_stages(
    stages: list[str],
    config: Path,
    levels: list[str] | None,
    output_dir: Path | None,
    quiet: bool,
    profile: str | None,
    workers: int | None,
    replace_stale: bool,
    force: bool,
    emulator_error: bool = True,
) -> None:
    from pipelines.state import resolve_levels
    from pipelines.study import run_stages

    _setup_logging(quiet)
    study = _load(config, output_dir, force)
    chosen = resolve_levels(study, levels)
    cluster = {"n_workers": workers, "dashboard_address": "127.0.0.1:0"} if workers else {}
    with _interruptible(study):
        result = run_stages(
            study,
            stages,
            chosen,
            progress=not quiet,
            replace_stale=replace_stale,
            profile=profile,
            cluster_overrides=cluster,
            emulator_error=emulator_error,
        )
    ran = ", ".join(f"{o.stage}{f' ({o.level})' if o.level else ''}" for o in result.recomputed)
    console.print(
        f"[green]done[/green]: {len(result.recomputed)} ran ({ran or 'nothing new'}), "
        f"{len(result.outcomes) - len(result.recomputed)} already done; {result.seconds:.0f} s"
    )


def _stage_command(stage: str, summary: str) -> None:
    def command(
        config: Path = ConfigArgument,
        level: list[str] | None = LevelOption,
        output_dir: Path | None = OutputDirOption,
        quiet: bool = QuietOption,
        profile: str | None = ProfileOption,
        workers: int | None = WorkersOption,
        replace_stale: bool = ReplaceStaleOption,
        force: bool = ForceOption,
    ) -> None:
        _run_stages(
            [stage], config, level, output_dir, quiet, profile, workers, replace_stale, force
        )

    command.__doc__ = summary
    app.command(name=stage)(command)


LEVEL_PIPELINE = ("train-emulator", "emulate", "infer", "score")
for _stage, _summary in (
    ("simulate", "Run the true simulator for the train, test and observation stores."),
    ("train-emulator", "Train the emulator of each (or each --level) fidelity level."),
    ("emulate", "Run each level's emulator as a simulator over the training parameters."),
    ("infer", "Train each level's posterior (NPE) on its emulated store, and the ceiling's."),
    ("score", "Score each level's posterior against the true simulator."),
):
    _stage_command(_stage, _summary)


StageOption = typer.Option(
    None,
    "--stage",
    help="Run only these stages of the pipeline (repeatable; default: all four). "
    "The ceiling has no emulator stages.",
)


@app.command()
def level(
    config: Path = ConfigArgument,
    level: list[str] | None = LevelOption,
    stage: list[str] | None = StageOption,
    output_dir: Path | None = OutputDirOption,
    quiet: bool = QuietOption,
    profile: str | None = ProfileOption,
    workers: int | None = WorkersOption,
    replace_stale: bool = ReplaceStaleOption,
    force: bool = ForceOption,
    emulator_error: bool = typer.Option(
        True,
        "--emulator-error/--no-emulator-error",
        help="Measure the emulator's error in the emulate stage (`submit --target` probes "
        "leave it for a later run).",
    ),
) -> None:
    """Run a level's pipeline (train-emulator, emulate, infer, score) in one process."""
    unknown = sorted(set(stage or ()) - set(LEVEL_PIPELINE))
    if unknown:
        raise typer.BadParameter(
            f"{', '.join(unknown)} is not a stage of a level's pipeline; use "
            f"{', '.join(LEVEL_PIPELINE)}",
            param_hint="--stage",
        )
    stages = [s for s in LEVEL_PIPELINE if not stage or s in stage]
    _run_stages(
        stages,
        config,
        level,
        output_dir,
        quiet,
        profile,
        workers,
        replace_stale,
        force,
        emulator_error,
    )


@app.command()
def report(
    config: Path = ConfigArgument,
    output_dir: Path | None = OutputDirOption,
    quiet: bool = QuietOption,
) -> None:
    """Write report/index.html and scores.csv from the scores of every level."""
    from pipelines.study import run_stages

    _setup_logging(quiet)
    study = _load(config, output_dir)
    result = run_stages(study, ["report"], [], progress=not quiet)
    _print_wide(_scores_table(result.layout.report / "scores.csv"))
    console.print(f"report: {result.report}")


@app.command()
def plan(
    config: Path = ConfigArgument,
    anchors: int = typer.Option(4, help="Levels to score, spread over the emulator error."),
    error: str = typer.Option("auto", help="Emulator error to predict from: auto, nll, c2st, mmd."),
    output_dir: Path | None = OutputDirOption,
    quiet: bool = QuietOption,
    force: bool = ForceOption,
) -> None:
    """Predict each level's posterior quality and cost from its emulator error, scoring only a
    few anchor levels; writes report/plan.json (a later `run` reuses what it computed)."""
    from pipelines.plan import plan_table, run_plan

    _setup_logging(quiet)
    found = run_plan(
        _load(config, output_dir, force), anchors=anchors, error=error, progress=not quiet
    )
    Console().print(plan_table(found))
    for sweep, at in found.crossings.items():
        Console().print(
            f"sweep {sweep}: {found.score} predicted to cross {found.target:g} at {at['knob']} = "
            f"{at['crossing']:.4g}, interval [{at['low']:.4g}, {at['high']:.4g}]",
            highlight=False,
        )
    Console().print(
        f"cheapest level predicted to meet {found.score} {found.target:g}: "
        f"{found.cheapest or 'none'} (meeting it even at its interval's worst: "
        f"{found.cheapest_sure or 'none'}); plan in {found.seconds:.0f} s",
        highlight=False,
    )


@app.command()
def sample(
    config: Path = ConfigArgument,
    level: str = typer.Option(..., help="A ladder level's name, or ceiling."),
    observation: Path = ObservationFileOption,
    n: int = typer.Option(1000, "-n", min=1, help="Draws per observation and replicate."),
    method: str = typer.Option("npe", help="One of the study's inference methods."),
    out: Path | None = SamplesOutOption,
    seed: int = typer.Option(0, min=0),
    output_dir: Path | None = OutputDirOption,
) -> None:
    """Draw from a trained level's posterior at observations you bring (CSV and pair plot)."""
    from pipelines.sampling import describe, sample_at_observations

    _setup_logging(quiet=True)
    found = sample_at_observations(
        _load(config, output_dir), level, observation, method=method, n=n, out=out, seed=seed
    )
    console.print(describe(found, level), soft_wrap=True, highlight=False)


@app.command()
def submit(
    config: Path = ConfigArgument,
    profile: str | None = typer.Option(
        None,
        help="SLURM profile whose submit: block gives each stage's resources. "
        "Default: the config's cluster profile.",
    ),
    output_dir: Path | None = OutputDirOption,
    scripts_only: bool = typer.Option(
        False, "--scripts-only", help="Write the sbatch and pipeline scripts, submit nothing."
    ),
    target: bool = typer.Option(
        False,
        "--target",
        help="Bisect each sweep for the crossing of report.quality_target, as `run --target` "
        "does: a control job submits one array task per level probed, round by round.",
    ),
    plan: bool = typer.Option(
        False,
        "--plan",
        help="What `emustudy plan` does, as SLURM arrays: every level's emulator, then the "
        "anchors' posteriors; writes report/plan.json.",
    ),
    anchors: int = typer.Option(4, help="With --plan: levels to score."),
    error: str = typer.Option("auto", help="With --plan: emulator error to predict from."),
    force: bool = ForceOption,
) -> None:
    """Submit the study to SLURM: simulate, then a job array over levels, then the report."""
    from pipelines.submit import submit_resources, submit_study, write_pipeline_scripts

    _setup_logging(quiet=True)
    study = _load(config, output_dir, force)
    profile = profile or study.cluster.profile
    if target and plan:
        raise typer.BadParameter("--target and --plan are two searches; pass one of them")
    if target or plan:
        _submit_control(study, config, "target" if target else "plan", profile, anchors, error)
        return
    if scripts_only:
        scripts = write_pipeline_scripts(
            study, submit_resources(profile, study.cluster.profiles_file)
        )
        for role, path in scripts.items():
            console.print(f"{role:>16}  {path}")
        return
    submission = submit_study(study, profile=profile, profiles_file=study.cluster.profiles_file)
    if not submission.job_ids:
        console.print("nothing to submit: every stage of the study is done")
        return
    console.print(f"scripts and logs in {submission.folder}")
    if submission.replaced:
        console.print(f"  cancelled {', '.join(submission.replaced)}: waited on unfinished jobs")
    if submission.after:
        console.print(f"  kept      {', '.join(submission.after)}: still queued or running")
    if submission.simulate:
        console.print(f"  simulate  job {submission.simulate}")
    if submission.levels:
        names = ", ".join(submission.level_names)
        console.print(f"  levels    job array {submission.levels} ({names}), afterok simulate")
    if submission.report:
        console.print(f"  report    job {submission.report}, afterok levels")
    console.print("follow it with: emustudy status " + str(config))


def _submit_control(
    study: StudyConfig, config: Path, mode: str, profile: str, anchors: int, error: str
) -> None:
    from pipelines.submit_control import submit_control

    step = submit_control(
        study,
        mode=mode,  # type: ignore[arg-type]
        profile=profile,
        profiles_file=study.cluster.profiles_file,
        anchors=anchors,
        error=error,
    )
    result = "report/adaptive.json" if mode == "target" else "report/plan.json"
    console.print(f"scripts and logs in {study.study_dir.resolve() / 'slurm'}")
    if step.simulate:
        console.print(f"  simulate  job {step.simulate}")
    after = ", afterok simulate" if step.simulate else ""
    console.print(
        f"  control   job {step.control}{after}: submits each next job array (one task per "
        f"level) and itself after it, until it writes {result}"
    )
    console.print("follow it with: emustudy status " + str(config))


@app.command("control-step", hidden=True)
def control_step(
    config: Path = ConfigArgument,
    mode: str = typer.Option(..., help="target or plan"),
    profile: str = typer.Option(...),
    began: float = typer.Option(..., help="When the chain was submitted (Unix time)."),
    anchors: int = typer.Option(4),
    error: str = typer.Option("auto"),
) -> None:
    """One step of an `emustudy submit --target/--plan` chain (run by its control job)."""
    from pipelines.submit_control import control_step as step_once

    _setup_logging(quiet=True)
    study = _load(config, None, True)
    step = step_once(
        study,
        mode=mode,  # type: ignore[arg-type]
        profile=profile,
        began=began,
        anchors=anchors,
        error=error,
    )
    if step.result is not None:
        for line in step.lines:
            print(line)
        print(f"done: {step.result}")
        return
    names = ", ".join(step.level_names)
    print(f"submitted {step.array_name}: job array {step.array} ({names})")
    print(f"next control job {step.control}, afterok {step.array}")


_STATE_STYLE = {
    "done": "green",
    "running": "cyan",
    "pending": "yellow",
    "failed": "red",
    "cancelled": "red",
    "stale": "magenta",
    "damaged": "red",
    "partial": "yellow",
    "not started": "dim",
}


@app.command()
def status(config: Path = ConfigArgument, output_dir: Path | None = OutputDirOption) -> None:
    """Show each stage of each level: done, running, pending, failed, with ledger counts."""
    from pipelines.status import study_status

    _setup_logging(quiet=True)
    study = _load(config, output_dir)
    found = study_status(study)
    table = Table(title=f"study {study.name} ({study.study_dir})")
    for header in ("stage", "level", "state", "SLURM job", "ok", "failed", "pending"):
        table.add_column(
            header, justify="right" if header in ("ok", "failed", "pending") else "left"
        )
    for row in found.rows:
        style = _STATE_STYLE.get(row.state, "")
        counts = row.counts
        bad = sum(counts.get(k, 0) for k in ("invalid", "failed", "timeout")) if counts else None
        table.add_row(
            row.stage,
            row.level or "-",
            f"[{style}]{row.state}[/{style}]" if style else row.state,
            f"{row.job} {row.job_state or ''}".strip() if row.job else "-",
            str(counts.get("ok", "")) if counts else "",
            "" if bad is None else str(bad),
            str(counts.get("pending", "")) if counts else "",
        )
    Console().print(table)
    for board in found.dashboards:
        where = f"job {board.get('slurm_job_id')}" if board.get("slurm_job_id") else board["host"]
        Console().print(f"running campaign ({where}): dashboard {board['url']}")
    if found.slurm_error:
        console.print(f"[yellow]SLURM did not answer:[/yellow] {found.slurm_error}")
    summary = "every stage is done" if found.all_done else "not finished"
    Console().print(summary)
    repair = found.repair_hint(config)
    if repair:
        for line in found.damage[:10]:
            Console().print(f"  {line}", soft_wrap=True, highlight=False)
        if len(found.damage) > 10:
            Console().print(f"  ... and {len(found.damage) - 10} more", highlight=False)
        Console().print(repair, soft_wrap=True, highlight=False)
    next_step = found.next_step(config)
    if next_step:
        Console().print(next_step)


@app.command()
def cancel(config: Path = ConfigArgument, output_dir: Path | None = OutputDirOption) -> None:
    """Cancel the SLURM jobs `emustudy submit` started for this study."""
    from pipelines.submit import cancel_study

    _setup_logging(quiet=True)
    cancelled = cancel_study(_load(config, output_dir))
    if cancelled:
        console.print(f"cancelled jobs {', '.join(cancelled)}; done work is kept")
    else:
        console.print("no job of this study is queued or running")


def _duration(hours: float) -> str:
    """Core-hours as a readable cost: seconds, minutes or hours."""
    seconds = hours * 3600
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{hours:.1f} h"


def _cost_table(study: StudyConfig) -> Table:
    """Estimated core time per stage (:mod:`pipelines.cost_estimate`), said to be estimates."""
    from pipelines.cost_estimate import estimate_stage_costs, simulator_seconds

    per_run, how = simulator_seconds(study)
    costs = estimate_stage_costs(study, per_run)
    table = Table(
        title="estimated core time per stage (estimates, a factor of 2 either way: the "
        f"simulator at {per_run:.3g} s per run, {how}; the rest from per-unit models, "
        "pipelines/cost_estimate.py)"
    )
    for header in ("stage", "core s", "about", "from"):
        table.add_column(header, justify="right" if header == "core s" else "left")
    for cost in costs:
        table.add_row(cost.stage, _seconds(cost.core_s), _duration(cost.core_s / 3600), cost.basis)
    total = sum(cost.core_s for cost in costs)
    table.add_row("total", _seconds(total), _duration(total / 3600), "")
    return table


def _seconds(value: float) -> str:
    """Seconds with three significant digits at least, without an exponent."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}" if value < 1 else f"{value:.1f}"


def _print_wide(table: Table) -> None:
    """Print a wide table whole: a terminal wraps it to its width; a log file or a pipe (80
    columns to rich) gets it unwrapped instead of every cell broken over three lines."""
    (console if console.is_terminal else Console(stderr=True, width=200)).print(table)


def _scores_table(csv: Path) -> Table:
    frame = pd.read_csv(csv)
    columns = {  # header: (column, format); columns a study does not have are left out
        "C2ST": ("c2st_mean", "{:.3f}"),
        "NLTP": ("nltp_mean", "{:.3f}"),
        "SBC min p": ("sbc_min_pvalue_mean", "{:.2g}"),  # p-values of 1e-5 are not 0
        "emu C2ST": ("emulator_c2st", "{:.3f}"),
        "emu NLL": ("emulator_nll", "{:.3f}"),
        "cost": ("total_core_hours", _duration),
    }
    shown = {h: c for h, c in columns.items() if c[0] in frame and frame[c[0]].notna().any()}
    table = Table(
        title="scores per level and method, mean over replicates ± standard error (training "
        "seeds and observations or test pairs; ceiling: true-simulator data); resolved: the "
        "quality score tells the level from every other beyond that uncertainty"
    )
    for header in ("level", "simpl.", *shown):
        table.add_column(header, justify="left" if header == "level" else "right")
    resolved = "quality_resolved" in frame and frame["quality_resolved"].notna().any()
    if resolved:
        table.add_column("resolved", justify="left")
    for row in frame.to_dict("records"):
        cells = []
        for column, style in shown.values():
            value = row.get(column)
            if value is None or pd.isna(value):
                cells.append("-")
                continue
            cell = style(value) if callable(style) else style.format(value)
            se = row.get(column.removesuffix("_mean") + "_se")
            cells.append(cell + (f" ± {se:.3f}" if se is not None and pd.notna(se) else ""))
        if resolved:
            cells.append(_resolved_cell(row.get("quality_resolved")))
        simplification = row["simplification"]
        table.add_row(
            str(row.get("unit", row["level"])),
            "-" if pd.isna(simplification) else f"{simplification:g}",
            *cells,
        )
    return table


def _resolved_cell(value: object) -> str:
    if value is None or pd.isna(value):
        return "-"
    return "yes" if bool(value) else "no"


def main() -> None:
    """Entry point: user errors become one clear message and exit code 2."""
    try:
        app()
    except EmustudyError as err:
        # escaped and unwrapped: messages quote values like [1, 2] and paths that must stay whole
        console.print(f"[red]error:[/red] {escape(str(err))}", soft_wrap=True, highlight=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
