"""`emustudy submit / status / cancel` on the real local SLURM (cluster/local_slurm.sh).

The quickstart end to end through sbatch (with a scancel and a resume on the way) is in
tests/faults/test_slurm_resume.py: one run of it covers both.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from cluster.jobs import StageResources, SubmitResources, job_states, sbatch_script
from pipelines.cli import app
from pipelines.config import load_config
from pipelines.status import study_status
from pipelines.submit import write_pipeline_scripts

ROOT = Path(__file__).parents[2]
QUICKSTART = ROOT / "configs" / "quickstart.yaml"


def _emustudy(*args: str) -> Result:
    """Run the ``emustudy`` command line here: a new process would spend seconds importing."""
    return CliRunner().invoke(app, list(args))


def _wait_until_gone(job_ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        squeue = subprocess.run(
            ["squeue", "--noheader", "--format=%i"], capture_output=True, text=True, timeout=30
        )
        listed = {line.split("_")[0] for line in squeue.stdout.split()}
        if not listed & set(job_ids):
            return
        time.sleep(3)
    raise AssertionError(f"jobs {job_ids} still queued after {timeout} s")


def test_sbatch_script_carries_every_resource():
    resources = StageResources(
        cpus=4,
        memory="8GB",
        gpus=1,
        walltime="02:00:00",
        partition="gpu",
        account="proj",
        extra_directives=("--qos=short",),
    )
    text = sbatch_script("x", resources, ["echo hi"], log_file=Path("/l/%j.out"), array="0-3")
    for line in (
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=8G",
        "#SBATCH --gres=gpu:1",
        "#SBATCH --time=02:00:00",
        "#SBATCH --partition=gpu",
        "#SBATCH --account=proj",
        "#SBATCH --qos=short",
        "#SBATCH --array=0-3",
        "#SBATCH --output=/l/%j.out",
    ):
        assert line in text.splitlines(), line


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("memory", "lots", "not a SLURM size"),
        ("walltime", "1h", "not a SLURM time"),
        ("extra_directives", ("#SBATCH --x",), "one sbatch option"),
    ],
)
def test_bad_resources_are_refused_with_the_fix(field, value, message):
    with pytest.raises(ValueError, match=message):
        StageResources(**{field: value})


def test_pipeline_scripts_are_readable_and_an_edited_one_is_kept(tmp_path):
    config = load_config(QUICKSTART, output_dir=tmp_path)
    scripts = write_pipeline_scripts(config, SubmitResources())
    level = scripts["level:reduced"].read_text()
    (command,) = [line for line in level.splitlines() if "pipelines.cli" in line]  # one process
    assert command.split()[3] == "level"
    assert re.findall(r"--stage=(\S+)", command) == ["train-emulator", "emulate", "infer", "score"]
    assert "--level reduced" in level and '"${SLURM_CPUS_PER_TASK:-1}"' in level
    array = scripts["levels"].read_text()
    assert "#SBATCH --array=0-3" in array and "LEVELS=(full reduced crude ceiling)" in array
    scripts["simulate"].write_text(scripts["simulate"].read_text() + "# my edit\n")
    write_pipeline_scripts(config, SubmitResources())
    backups = list(scripts["simulate"].parent.glob("simulate.sbatch.*.bak"))
    assert len(backups) == 1 and backups[0].read_text().endswith("# my edit\n")


def test_probe_scripts_leave_the_emulator_error_out_only_where_they_emulate(tmp_path):
    config = load_config(QUICKSTART, output_dir=tmp_path)
    done = {"full": {"train-emulator", "emulate"}}
    probes = write_pipeline_scripts(
        config, SubmitResources(), ["reduced", "full"], done, emulator_error=False
    )
    (reduced,) = [
        line for line in probes["level:reduced"].read_text().splitlines() if "cli" in line
    ]
    assert "--stage=emulate" in reduced and reduced.count("--no-emulator-error") == 1
    full = probes["level:full"].read_text()  # emulated already: nothing to leave out
    assert "--no-emulator-error" not in full and "# done when submitted" in full
    plain = write_pipeline_scripts(config, SubmitResources(), ["reduced"])
    assert "emulator-error" not in plain["level:reduced"].read_text()


@pytest.mark.slurm
def test_cancel_stops_what_submit_started(tmp_path):
    config = yaml.safe_load(QUICKSTART.read_text())
    config["name"] = "to-cancel"
    path = tmp_path / "cancel.yaml"
    path.write_text(yaml.safe_dump(config))
    submitted = _emustudy(
        "submit", str(path), "--profile", "slurm-local", "--output-dir", str(tmp_path)
    )
    assert submitted.exit_code == 0, submitted.output
    record = json.loads((tmp_path / "to-cancel" / "slurm" / "jobs.json").read_text())
    ids = record["submissions"][-1]["job_ids"]

    cancelled = _emustudy("cancel", str(path), "--output-dir", str(tmp_path))
    assert cancelled.exit_code == 0, cancelled.output
    _wait_until_gone(ids, timeout=120)
    states = job_states(ids)
    assert states and all(state == "CANCELLED" for state in states.values()), states
    rows = study_status(load_config(path, output_dir=tmp_path)).rows
    assert {row.state for row in rows} <= {"cancelled", "not started", "partial"}, rows
    assert any(row.job_state == "CANCELLED" and row.state == "cancelled" for row in rows)


def test_a_level_command_refuses_a_stage_that_is_not_a_levels(tmp_path):
    found = _emustudy("level", str(QUICKSTART), "--output-dir", str(tmp_path), "--stage", "sample")
    assert found.exit_code == 2
    assert "sample is not a stage of a level's pipeline" in found.output
    assert "train-emulator, emulate, infer, score" in found.output
    assert not any(tmp_path.iterdir())  # refused before the study folder was made
