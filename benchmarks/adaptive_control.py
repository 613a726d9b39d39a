"""The full sweep of configs/control.yaml against `emustudy run --target` (bisection).

Runs both, each in a study folder of its own under ``--out`` (default a temporary folder), with
the same command a user types, and prints:

* wall time of each command, its CPU seconds (its own and its Dask workers', from
  ``getrusage``) and the core-seconds its stages recorded (``timings.json``: the true-simulator
  campaigns and every level's train-emulator, emulate, emulator-error, infer and score, the
  ceiling's too; each stage's ``<stage>_cpu``, the core seconds of its own tasks), and the
  ratios;
* the full sweep's crossing of ``report.quality_target`` (isotonic fit, bootstrap interval, as
  the report states it) and the bracket the search found (the least simplified level surely
  failing and the most simplified surely meeting, each probe with its mean +/- 2 SE and
  verdict), and whether the first lies in the second.

Usage: ``.venv/bin/python benchmarks/adaptive_control.py [--config configs/control.yaml]``
(about 10 min on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.config import load_config  # noqa: E402
from pipelines.layout import StudyLayout  # noqa: E402
from pipelines.report_data import collect_report_data  # noqa: E402


def _run(config: Path, out: Path, *extra: str) -> tuple[float, float]:
    """Wall seconds of the command and the CPU seconds of it and its (waited-for) children."""
    began, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [sys.executable, "-m", "pipelines.cli", "run", str(config), "--output-dir", str(out)]
        + ["--quiet", *extra],
        cwd=ROOT,
        check=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return time.perf_counter() - began, cpu


def _core_seconds(study: Path) -> float:
    """Every stage's recorded core seconds in a study folder: ``<stage>_cpu``, or the stage's
    wall seconds where no core time was recorded (never both: they measure the same work)."""
    total = 0.0
    for path in study.rglob("timings.json"):
        timings = json.loads(path.read_text())
        stages = {key.removesuffix("_cpu") for key in timings}
        total += sum(timings.get(f"{stage}_cpu", timings.get(stage, 0.0)) for stage in stages)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "control.yaml")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="adaptive-"))
    full_wall, full_cpu = _run(args.config, out / "full")
    adaptive_wall, adaptive_cpu = _run(args.config, out / "adaptive", "--target")
    config = load_config(args.config, output_dir=out / "full")
    full = StudyLayout(config.study_dir)
    adaptive = StudyLayout(load_config(args.config, output_dir=out / "adaptive").study_dir)
    full_cost, adaptive_cost = _core_seconds(full.root), _core_seconds(adaptive.root)
    found = json.loads((adaptive.report / "adaptive.json").read_text())["sweeps"]
    curves = collect_report_data(config, full).dose_response
    print(f"study folders in {out}")
    for name, wall, cpu, cost in (
        ("full sweep", full_wall, full_cpu, full_cost),
        ("--target  ", adaptive_wall, adaptive_cpu, adaptive_cost),
    ):
        print(f"{name}: {wall:.0f} s wall, {cpu:.0f} CPU s, {cost:.0f} core-s the stages recorded")
    print(
        f"ratio --target / full: {adaptive_cpu / full_cpu:.2f} of the CPU seconds, "
        f"{adaptive_cost / full_cost:.2f} of the recorded core-seconds, "
        f"{adaptive_wall / full_wall:.2f} of the wall time"
    )
    for sweep in found:
        _, curve = curves[sweep["sweep"]]
        low, high = sweep["bracket"]
        inside = low <= curve.crossing <= high or high <= curve.crossing <= low
        levels = ", ".join(
            f"{p['level']} ({p['quality']:.3f} +/- {p['spread']:.3f}, {p['verdict']})"
            for p in sweep["probes"]
        )
        print(
            f"sweep {sweep['sweep']}: full crossing {curve.crossing:.4g} (interval "
            f"{curve.crossing_low:.4g} to {curve.crossing_high:.4g}); bisection ran "
            f"{len(sweep['probes'])} of {sweep['n_levels']} levels [{levels}], bracket "
            f"{low:g} to {high:g}, crossing about {sweep['crossing']:.4g}; full crossing "
            f"{'inside' if inside else 'OUTSIDE'} the bracket"
        )


if __name__ == "__main__":
    main()
