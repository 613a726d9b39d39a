"""Each stage of a study: wall time, core time, its irreducible part and the ratio.

    .venv/bin/python benchmarks/study_stages.py configs/lorenz96_small.yaml --out /tmp/stages

Runs the study as ``emustudy run`` does (``run_stages`` on one cluster of the config's profile),
one stage at a time so that each stage's wall time is measured, then reads from the finished
study folder:

- core seconds: what each stage recorded for its own tasks (``timings.json``, measured on the
  workers by :mod:`cluster.task_clock`), summed over levels and units;
- the irreducible part, the work no implementation of the stage can skip: the simulator's runs
  (the ``elapsed`` column of every campaign ledger the stage wrote: the true campaigns, the
  reference's, each level's stand-in) and network training (the seconds each emulator,
  posterior replicate and reference member spent in its training loop, from their files).
  Stages whose work is neither (scoring, emulator-error measurement, the report) have none;
- the ratio core / irreducible: the goal is no stage above 2.

Prints a Markdown table and writes ``stages.json`` beside the study.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines.config import load_config  # noqa: E402
from pipelines.layout import StudyLayout  # noqa: E402
from pipelines.report_data import TRUE_STORES, seconds_per_run  # noqa: E402
from pipelines.stages import _ERROR_SETTINGS as ERROR_DRAWS  # noqa: E402
from pipelines.study import STAGES, run_stages, study_client  # noqa: E402
from pipelines.units import units  # noqa: E402
from simulators.store import Status, open_store  # noqa: E402

ROWS = {  # table row: (the study stage whose wall time it is part of, timings.json keys)
    "simulate": ("simulate", ("simulate-train", "simulate-test", "simulate-observations")),
    "reference campaign": ("simulate", ("simulate-reference",)),
    "train-emulator": ("train-emulator", ("train-emulator",)),
    "emulate": ("emulate", ("emulate",)),
    "emulator-error": ("emulate", ("emulator-error",)),
    "infer": ("infer", ("infer",)),
    "reference training": ("infer", ("reference",)),
    "score": ("score", ("score",)),
    "report": ("report", ()),
}


def _ledger_seconds(store: Path) -> float:
    if not store.exists():
        return 0.0
    ds = open_store(store)
    ran = ds["status"].values != Status.PENDING
    elapsed = np.asarray(ds["elapsed"].values, dtype=float)[ran]
    return float(np.nansum(elapsed))


def _training_seconds(path: Path) -> float:
    if not path.exists():
        return 0.0
    saved = torch.load(path, weights_only=True, map_location="cpu")
    training = saved.get("training") if isinstance(saved, dict) else None
    return float(training.get("seconds", 0.0)) if isinstance(training, dict) else 0.0


def _core_seconds(layout: StudyLayout) -> dict[str, float]:
    totals: dict[str, float] = {}
    for path in layout.root.rglob("timings.json"):
        for key, value in json.loads(path.read_text()).items():
            if key.endswith("_cpu"):
                stage = key.removesuffix("_cpu")
                totals[stage] = totals.get(stage, 0.0) + float(value)
    return totals


def _irreducible(config: Any, layout: StudyLayout) -> dict[str, tuple[float, str]]:
    levels = list(config.ladder)
    emulators = [layout.level(level.name).emulator for level in levels]
    stand_ins = [layout.level(level.name).emulated for level in levels]
    replicates = [
        layout.level(unit.name).replicate_posterior(r)
        for unit in units(config, [*levels, None])
        for r in range(config.inference.replicates)
    ]
    members = sorted(layout.reference.glob("member-*.pt"))
    true_per_run = seconds_per_run([layout.simulations(role) for role in TRUE_STORES])
    draws = ERROR_DRAWS["n_theta"] * ERROR_DRAWS["n_draws"]
    error_runs = sum(draws * (true_per_run + seconds_per_run([path])) for path in stand_ins)
    return {
        "simulate": (
            sum(_ledger_seconds(layout.simulations(r)) for r in TRUE_STORES if r != "reference"),
            "simulator runs (ledgers)",
        ),
        "reference campaign": (
            _ledger_seconds(layout.simulations("reference")),
            "simulator runs (ledger)",
        ),
        "train-emulator": (
            sum(_training_seconds(path) for path in emulators),
            "emulator training loops",
        ),
        "emulate": (sum(_ledger_seconds(path) for path in stand_ins), "stand-in runs (ledgers)"),
        "emulator-error": (
            error_runs,
            f"{len(stand_ins)} x {draws} runs of the simulator and of the stand-in "
            "(at the ledgers' cost per run)",
        ),
        "infer": (
            sum(_training_seconds(path) for path in replicates),
            f"{len(replicates)} posterior training loops",
        ),
        "reference training": (
            sum(_training_seconds(path) for path in members),
            f"{len(members)} member training loops",
        ),
        "score": (float("nan"), "none (sampling, classifiers)"),
        "report": (float("nan"), "none"),
    }


def _run(config: Any, layout: StudyLayout) -> tuple[dict[str, float], float, float]:
    """Run the study stage by stage on one cluster: wall seconds per stage, in all, to start."""
    levels = [*config.ladder, None]
    walls: dict[str, float] = {}
    began = time.perf_counter()
    with study_client(config, layout) as client:
        started = time.perf_counter() - began
        for stage in STAGES:
            clock = time.perf_counter()
            run_stages(config, [stage], levels, client=client)
            walls[stage] = time.perf_counter() - clock
    return walls, time.perf_counter() - began, started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="output_dir of the study")
    parser.add_argument(
        "--table-only",
        action="store_true",
        help="recompute the table of a finished run from its stages.json (runs nothing)",
    )
    args = parser.parse_args()
    config = load_config(args.config).model_copy(update={"output_dir": args.out})
    layout = StudyLayout(config.study_dir)
    if args.table_only:
        before = json.loads((layout.root / "stages.json").read_text())
        walls, total, started = before["walls"], before["total_wall_s"], before["cluster_start_s"]
    else:
        walls, total, started = _run(config, layout)
    cores = _core_seconds(layout)
    irreducible = _irreducible(config, layout)
    rows = []
    for name, (stage, keys) in ROWS.items():
        core = sum(cores.get(key, 0.0) for key in keys)
        floor, what = irreducible[name]
        ratio = core / floor if floor and np.isfinite(floor) else float("nan")
        first = next(row for row, (owner, _) in ROWS.items() if owner == stage)
        rows.append(
            {
                "stage": name,
                "wall_s": round(walls[stage], 1) if name == first else None,
                "core_s": round(core, 1),
                "irreducible_s": round(floor, 1) if np.isfinite(floor) else None,
                "irreducible": what,
                "ratio": round(ratio, 2) if np.isfinite(ratio) else None,
            }
        )
    record = {
        "config": str(args.config),
        "total_wall_s": round(total, 1),
        "cluster_start_s": round(started, 1),
        "walls": walls,
        "stages": rows,
    }
    (layout.root / "stages.json").write_text(json.dumps(record, indent=2))
    print(f"\n{config.name}: {total:.0f} s end to end (cluster start {started:.1f} s)\n")
    print("| stage | wall s | core s | irreducible core s | of | core / irreducible |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        floor = "–" if row["irreducible_s"] is None else f"{row['irreducible_s']:.1f}"
        wall = "(above)" if row["wall_s"] is None else f"{row['wall_s']:.1f}"
        ratio = "–" if row["ratio"] is None else f"{row['ratio']:.2f}"
        print(
            f"| {row['stage']} | {wall} | {row['core_s']:.1f} | {floor} | "
            f"{row['irreducible']} | {ratio} |"
        )


if __name__ == "__main__":
    main()
