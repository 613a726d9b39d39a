"""A SLURM job killed by ``scancel``: ``emustudy status`` says so and ``submit`` again resumes it.

Runs on the real local SLURM of ``cluster/local_slurm.sh`` (``slurm_conf`` fixture).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from cluster.jobs import job_states
from pipelines.cli import app
from pipelines.config import load_config
from pipelines.layout import StudyLayout
from pipelines.status import study_status
from pipelines.submissions import (
    ACTIVE,
    REPORT,
    SIMULATE,
    append_submission,
    level_unit,
    read_submissions,
    unit_jobs,
)
from pipelines.submit import _to_submit, cancel_study, submit_study
from simulators.errors import EmustudyError

ROOT = Path(__file__).parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"
NAMES = ["full", "reduced", "crude", "ceiling"]


def _small_quickstart(folder: Path) -> Path:
    """The quickstart's ladder and settings with a quarter of its training runs, one replicate
    and fewer score draws: the same jobs, stages and files, at a third of the run time."""
    raw = yaml.safe_load(QUICKSTART.read_text())
    raw["budgets"] |= {"train": 1000, "test": 100}
    raw["inference"] |= {"replicates": 1}
    raw["scores"] |= {"posterior_samples": 300, "sbc_samples": 50, "ppc_samples": 30}
    path = folder / "quickstart.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _emustudy(*args: str) -> Result:
    """Run the ``emustudy`` command line here: a new process would spend seconds importing."""
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})  # no 80-column cells


def _squeue(*options: str) -> str:
    return subprocess.run(
        ["squeue", "--noheader", *options], capture_output=True, text=True, timeout=30
    ).stdout


def _wait_until_gone(job_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = {line.split("_")[0] for line in _squeue("--format=%i").split()}
        if not listed & {job.split("_")[0] for job in job_ids}:
            return
        time.sleep(2)
    raise AssertionError(f"jobs {job_ids} still queued after {timeout} s: {_squeue()}")


def _mtimes(*paths: Path) -> dict[str, int]:
    files = [f for p in paths for f in ([p] if p.is_file() else sorted(p.rglob("*")))]
    return {str(f): f.stat().st_mtime_ns for f in files if f.is_file()}


def _manifest(path: Path) -> dict[str, str]:
    return json.loads(path.read_text()) if path.exists() else {}


def test_only_what_ended_unfinished_is_submitted_again_after_what_still_runs():
    everything = {SIMULATE, REPORT, *(level_unit(n) for n in NAMES)}
    running = {level_unit(n): f"13_{i}" for i, n in enumerate(NAMES) if n != "crude"}
    # One level task was cancelled: only it is resubmitted, and the report that waited on it.
    units = _to_submit(everything - {SIMULATE}, {**running, REPORT: "14"}, NAMES)
    assert units == [level_unit("crude"), REPORT]
    # All jobs still queued or running: nothing to submit (submit refuses).
    assert (
        _to_submit(
            everything - {SIMULATE}, {**running, level_unit("crude"): "13_2", REPORT: "14"}, NAMES
        )
        == []
    )
    # The simulate job ended unfinished: every level waiting on it goes again, after the new one.
    assert _to_submit(everything, {**running, REPORT: "14"}, NAMES) == [
        SIMULATE,
        *(level_unit(n) for n in NAMES),
        REPORT,
    ]
    # Levels already done are not submitted again, nor the simulate campaigns.
    assert _to_submit({level_unit("crude"), REPORT}, {}, NAMES) == [level_unit("crude"), REPORT]


def test_submissions_are_appended_and_the_newest_job_of_each_stage_wins(tmp_path):
    layout = StudyLayout(tmp_path / "study")
    (layout.root / "slurm").mkdir(parents=True)
    first = {"simulate": "11", "levels": "12", "level_names": NAMES, "report": "13"}
    (layout.root / "slurm" / "jobs.json").write_text(json.dumps(first))  # the older format
    second = {"simulate": None, "levels": "21", "level_names": ["crude"], "report": "22"}
    append_submission(layout, second)
    assert read_submissions(layout) == [first, second]
    assert unit_jobs(read_submissions(layout)) == {
        SIMULATE: "11",
        level_unit("full"): "12_0",
        level_unit("reduced"): "12_1",
        level_unit("crude"): "21_0",
        level_unit("ceiling"): "12_3",
        REPORT: "22",
    }


def test_the_dashboard_of_a_killed_stage_is_not_shown_as_running(tmp_path):
    config = load_config(QUICKSTART, output_dir=tmp_path)
    killed = subprocess.Popen(["sleep", "60"])
    killed.kill()
    killed.wait()
    boards = StudyLayout(config.study_dir).root / "dashboards"
    boards.mkdir(parents=True)
    for pid, port in ((killed.pid, 1), (os.getpid(), 2)):
        board = {"url": f"http://127.0.0.1:{port}/status", "host": socket.gethostname(), "pid": pid}
        (boards / f"{pid}.json").write_text(json.dumps(board))
    assert [b["pid"] for b in study_status(config).dashboards] == [os.getpid()]


@pytest.mark.slurm
def test_a_cancelled_level_task_is_resubmitted_after_the_jobs_still_queued(tmp_path):
    raw = yaml.safe_load(QUICKSTART.read_text())
    path = tmp_path / "partly.yaml"
    path.write_text(yaml.safe_dump({**raw, "name": "partly-cancelled"}))
    config = load_config(path, output_dir=tmp_path)
    layout = StudyLayout(config.study_dir)
    submit_study(config, profile="slurm-local")  # in-process: the CLI's start-up costs seconds
    old = read_submissions(layout)[0]
    subprocess.run(["scancel", f"{old['levels']}_2"], check=True, timeout=30)  # crude, pending
    try:
        again = submit_study(config, profile="slurm-local")
        first, new = read_submissions(layout)
        assert first == old and new["job_ids"] == again.job_ids
        assert new["simulate"] is None and new["level_names"] == ["crude"]
        # The old report waited on the cancelled task: cancelled here unless SLURM was first.
        assert set(new["replaced"]) <= {old["report"]}
        assert job_states([old["report"]]).get(old["report"]) not in ACTIVE
        kept = [f"{old['levels']}_{i}" for i in (0, 1, 3)]
        assert set(new["after"]) == {old["simulate"], *kept}
        dependencies = _squeue("--format=%i %E", f"--jobs={new['levels']},{new['report']}")
        assert f"afterok:{old['simulate']}" in dependencies, dependencies
        for job in [new["levels"], *kept]:
            assert f"afterok:{job}" in dependencies, dependencies
    finally:
        cancel_study(config)
    ids = [job for record in read_submissions(layout) for job in record["job_ids"]]
    _wait_until_gone(ids, timeout=60)


@pytest.mark.slurm
@pytest.mark.slow
def test_the_quickstart_through_sbatch_survives_a_scancel_and_submit_again_resumes_it(tmp_path):
    """Also the end-to-end test of ``emustudy submit``: one run of the quickstart covers both."""
    quickstart = _small_quickstart(tmp_path)
    args = (str(quickstart), "--output-dir", str(tmp_path / "studies"))
    submitted = _emustudy("submit", args[0], "--profile", "slurm-local", *args[1:])
    assert submitted.exit_code == 0, submitted.output
    config = load_config(quickstart, output_dir=tmp_path / "studies")
    layout = StudyLayout(config.study_dir)
    (first,) = read_submissions(layout)
    array = first["levels"]
    assert first["level_names"] == NAMES and len(first["job_ids"]) == 3
    dependencies = _squeue("--format=%i %E", f"--jobs={','.join(first['job_ids'])}")
    assert f"afterok:{first['simulate']}" in dependencies, dependencies
    assert f"afterok:{array}" in dependencies, dependencies
    assert "pending" in {row.state for row in study_status(config).rows}
    with pytest.raises(EmustudyError, match="already submitted"):
        submit_study(config, profile="slurm-local")

    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:  # a level task runs and has trained its emulator
        running = "RUNNING" in _squeue("--array", "--format=%T", f"--jobs={array}")
        if running and any("train-emulator" in _manifest(layout.level(n).manifest) for n in NAMES):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"no level task trained its emulator: {_squeue()}")
    subprocess.run(["scancel", array], check=True, timeout=30)  # as a user would
    _wait_until_gone(first["job_ids"], timeout=60)

    done = {n: _manifest(layout.level(n).manifest) for n in NAMES}
    kept = _mtimes(layout.root / "simulations")
    for name, stages in done.items():
        level = layout.level(name)
        outputs = {"train-emulator": level.emulator, "emulate": level.emulated, "score": level.root}
        kept |= _mtimes(*(path for stage, path in outputs.items() if stage in stages))
    assert any(str(layout.level(n).emulator) in kept for n in NAMES)

    status = study_status(config)
    cancelled = [row for row in status.rows if row.state == "cancelled" and row.level]
    assert cancelled and all(row.job.startswith(f"{array}_") for row in cancelled), status.rows
    assert status.dashboards == []  # a killed job's dashboard record is not shown as running
    text = " ".join(_emustudy("status", *args).stdout.split())
    assert "cancelled" in text and f"{array}_" in text and "CANCELLED" in text, text
    assert "emustudy submit" in text and "--profile slurm-local` again to resume" in text, text

    again = _emustudy("submit", args[0], "--profile", "slurm-local", *args[1:])
    assert again.exit_code == 0, again.output
    history = read_submissions(layout)
    assert len(history) == 2 and history[0] == first
    second = history[1]
    assert second["simulate"] is None  # the true-simulator stores were done
    assert second["level_names"] == [n for n in NAMES if "score" not in done[n]]
    for name in second["level_names"]:  # stages done before the cancel are not started again
        script = (layout.root / "slurm" / "levels" / f"{name}.sh").read_text().splitlines()
        skipped = {line.split()[7] for line in script if line.startswith("# done when submitted:")}
        assert skipped == set(done[name]) & {"train-emulator", "emulate", "infer"}, script
    _wait_until_gone(second["job_ids"], timeout=600)

    status = study_status(config)
    assert status.all_done, [(r.stage, r.level, r.state, r.job, r.job_state) for r in status.rows]
    assert "every stage is done" in _emustudy("status", *args).stdout
    assert (layout.report / "index.html").exists()
    logs = layout.root / "slurm" / "logs"
    for index in range(len(second["level_names"])):
        assert (logs / f"levels-{second['levels']}_{index}.out").exists()
    assert _mtimes(*(Path(p) for p in kept)) == kept  # nothing done before the cancel was redone
    for name, stages in done.items():
        after = _manifest(layout.level(name).manifest)
        assert {stage: after[stage] for stage in stages} == stages
