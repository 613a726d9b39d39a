"""SLURM batch jobs for pipeline stages: resources, sbatch scripts, submission, states, cancel.

This module knows SLURM, not studies: :mod:`pipelines.submit` decides which scripts a study
needs and in which order they depend on each other. Scripts are plain, readable bash files that
users may edit before (re)submitting them.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from simulators.errors import EmustudyError

__all__ = [
    "FINISHED_BAD",
    "SlurmError",
    "StageResources",
    "SubmitResources",
    "sbatch_script",
    "write_script",
    "sbatch",
    "job_states",
    "parse_sacct",
    "parse_scontrol",
    "parse_squeue",
    "scancel",
    "unknown_jobs",
]

# SLURM job states after which a job will not run again and did not succeed.
FINISHED_BAD = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "TIMEOUT",
    }
)
_MEMORY = re.compile(r"^\d+[KMGT]?$")
_WALLTIME = re.compile(r"^(\d+-)?\d+(:\d{2}){0,2}$")
_TIMEOUT_S = 60.0


class SlurmError(EmustudyError, RuntimeError):
    """A SLURM command failed or is missing; the message carries its output."""


class StageResources(BaseModel):
    """What one stage's SLURM job asks for (``#SBATCH`` lines)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpus: int = Field(1, gt=0, description="--cpus-per-task; also the job's Dask workers")
    memory: str = Field("4G", description="--mem, e.g. 4G or 4000M")
    gpus: int = Field(0, ge=0, description="--gres=gpu:N; 0 asks for none")
    walltime: str = Field("01:00:00", description="--time, e.g. 30, 01:00:00 or 1-00:00:00")
    partition: str | None = Field(None, description="--partition; None: the cluster's default")
    account: str | None = Field(None, description="--account; None leaves it out")
    extra_directives: tuple[str, ...] = Field((), description='more options, e.g. "--qos=short"')

    @field_validator("memory")
    @classmethod
    def _memory(cls, memory: str) -> str:
        memory = memory.strip().upper().removesuffix("B")
        if not _MEMORY.match(memory):
            raise ValueError(
                f"memory {memory!r} is not a SLURM size; use a number with K, M, G or T, e.g. 4G"
            )
        return memory

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, walltime: str) -> str:
        if not _WALLTIME.match(walltime):
            raise ValueError(
                f"walltime {walltime!r} is not a SLURM time; use MM, HH:MM:SS or D-HH:MM:SS"
            )
        return walltime

    @field_validator("extra_directives")
    @classmethod
    def _options(cls, directives: tuple[str, ...]) -> tuple[str, ...]:
        for directive in directives:
            if not directive.startswith("-") or "\n" in directive:
                raise ValueError(
                    f"extra directive {directive!r} must be one sbatch option such as "
                    '"--qos=short" (no "#SBATCH" prefix, no newline)'
                )
        return directives

    def directives(self) -> list[str]:
        """The sbatch options, one per ``#SBATCH`` line."""
        lines = [
            f"--cpus-per-task={self.cpus}",
            f"--mem={self.memory}",
            f"--time={self.walltime}",
        ]
        if self.gpus:
            lines.append(f"--gres=gpu:{self.gpus}")
        if self.partition:
            lines.append(f"--partition={self.partition}")
        if self.account:
            lines.append(f"--account={self.account}")
        return lines + list(self.extra_directives)


class SubmitResources(BaseModel):
    """Resources per stage of a submitted study (the ``submit:`` block of a SLURM profile)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    simulate: StageResources = StageResources(cpus=2)
    level: StageResources = StageResources(cpus=1)
    report: StageResources = StageResources(cpus=1, memory="2G", walltime="00:30:00")


def sbatch_script(
    job_name: str,
    resources: StageResources,
    body: Sequence[str],
    *,
    log_file: Path,
    array: str | None = None,
    workdir: Path | None = None,
) -> str:
    """The text of an sbatch script.

    Parameters
    ----------
    job_name : str
    resources : StageResources
    body : sequence of str
        Bash lines run by the job, after ``set -euo pipefail``.
    log_file : Path
        Where SLURM writes the job's output; ``%A``/``%a``/``%j`` are expanded by SLURM.
    array : str, optional
        ``--array`` specification, e.g. ``0-3``.
    workdir : Path, optional
        ``--chdir`` of the job.
    """
    options = [f"--job-name={job_name}", f"--output={log_file}", *resources.directives()]
    if array is not None:
        options.append(f"--array={array}")
    if workdir is not None:
        options.append(f"--chdir={workdir}")
    lines = ["#!/bin/bash", *(f"#SBATCH {option}" for option in options), ""]
    lines += ["set -euo pipefail", *body, ""]
    return "\n".join(lines)


def write_script(path: Path, text: str) -> Path:
    """Write a script the owner may read, edit and run (mode 0750), atomically.

    A different script already at ``path`` (say, one the user edited) is kept beside it as
    ``<name>.<UTC time>.bak``, never overwritten.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists() and path.read_text() != text:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        os.replace(path, path.with_name(f"{path.name}.{stamp}.bak"))
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    temporary.chmod(0o750)
    os.replace(temporary, path)
    return path


def _run(argv: list[str], what: str) -> str:
    if shutil.which(argv[0]) is None:
        raise SlurmError(
            f"{argv[0]} is not on PATH: {what} needs a SLURM client (Debian: apt-get install "
            "slurm-client) and SLURM_CONF pointing at the cluster; or run the study without "
            "SLURM: emustudy run CONFIG"
        )
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=_TIMEOUT_S, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as err:
        raise SlurmError(f"{shlex.join(argv)} did not answer within {_TIMEOUT_S:.0f} s") from err
    if result.returncode != 0:
        raise SlurmError(
            f"{what} failed: {shlex.join(argv)} exited with {result.returncode}: "
            f"{(result.stderr or result.stdout).strip()}"
        )
    return result.stdout


def sbatch(script: Path, *, after_ok: Iterable[str] = (), workdir: Path | None = None) -> str:
    """Submit ``script`` and return its job id.

    Parameters
    ----------
    script : Path
    after_ok : iterable of str
        Job ids that must all end successfully first (``--dependency=afterok:...``; an array job
        id waits for every task). ``--kill-on-invalid-dep=yes`` removes the job if one fails.
    workdir : Path, optional
        Directory sbatch runs in (the job's default working directory).
    """
    argv = ["sbatch", "--parsable"]
    after_ok = list(after_ok)
    if after_ok:
        argv += [f"--dependency=afterok:{':'.join(after_ok)}", "--kill-on-invalid-dep=yes"]
    argv.append(str(script))
    if workdir is not None:
        argv[1:1] = [f"--chdir={workdir}"]
    output = _run(argv, f"submitting {script.name}")
    job_id = output.strip().split(";")[0]
    if not job_id.isdigit():
        raise SlurmError(f"sbatch printed {output.strip()!r} instead of a job id for {script}")
    return job_id


_ARRAY = re.compile(r"^(\d+)_\[?([\d,\-%]+)\]?$")


def _expand(job: str) -> list[str]:
    """Array task ids in one of SLURM's spellings, one id each.

    ``13_[1-3,5%2]`` (pending tasks; ``%2`` a throttle) gives ``13_1 13_2 13_3 13_5``; other ids
    come back as they are.
    """
    found = _ARRAY.match(job)
    if not found:
        return [job]
    base, spec = found.group(1), found.group(2).split("%")[0]
    tasks: list[str] = []
    for part in spec.split(","):
        low, _, high = part.partition("-")
        if low.isdigit() and (not high or high.isdigit()):
            tasks += [f"{base}_{i}" for i in range(int(low), int(high or low) + 1)]
    return tasks or [job]


def parse_squeue(output: str) -> dict[str, str]:
    """States from ``squeue --noheader --array --format=%i|%T`` output."""
    states = {}
    for line in output.splitlines():
        job, _, state = line.strip().partition("|")
        for name in _expand(job) if job else []:
            states[name] = state.strip()
    return states


def parse_scontrol(output: str) -> dict[str, str]:
    """States from ``scontrol --oneliner show job ID`` output: one line per job or array task
    (pending tasks of an array share one line, ``ArrayTaskId=2-3``)."""
    states = {}
    for line in output.splitlines():
        fields = dict(
            item.split("=", 1) for item in line.split() if "=" in item and not item.startswith("=")
        )
        if "JobState" not in fields:
            continue
        array, task = fields.get("ArrayJobId"), fields.get("ArrayTaskId")
        names = _expand(f"{array}_[{task}]") if array and task else [fields.get("JobId", "")]
        for name in filter(None, names):
            states[name] = fields["JobState"]
    return states


def parse_sacct(output: str) -> dict[str, str]:
    """States from ``sacct --noheader --parsable2 --format=JobID,State`` output; job steps
    (``13_1.batch``) are skipped and ``CANCELLED by 1000`` reads as ``CANCELLED``."""
    states = {}
    for line in output.splitlines():
        job, _, state = line.strip().partition("|")
        if not job or "." in job or not state:
            continue
        for name in _expand(job):
            states[name] = state.split()[0]
    return states


def unknown_jobs(job_ids: Iterable[str], states: dict[str, str]) -> list[str]:
    """The ids of ``job_ids`` that ``states`` says nothing about: neither the id itself nor,
    for an array task, its array's own id (a task not started may be listed under it)."""
    return [j for j in job_ids if j not in states and j.split("_")[0] not in states]


def _ask(argv: list[str], parse, what: str) -> dict[str, str]:
    """``parse`` of a SLURM command's output; {} when SLURM does not know the job or, for
    sacct, keeps no accounting (squeue's own failures are raised: SLURM is not answering)."""
    try:
        return parse(_run(argv, what))
    except SlurmError as err:
        if argv[0] == "squeue" and "Invalid job id" not in str(err):
            raise
        return {}


def job_states(job_ids: Iterable[str]) -> dict[str, str]:
    """The SLURM state of each job or array task (``<array id>_<index>``), and of the others
    SLURM lists with them.

    ``squeue`` first; a job or task it does not list (ended: a task cancelled alone, while the
    rest of its array runs, included) is asked of ``scontrol`` (which keeps ended jobs for
    ``MinJobAge``, 300 s by default), then of ``sacct`` (where accounting is kept). Jobs none of
    them knows are missing from the result: callers judge them by the outputs they left.

    Raises
    ------
    SlurmError
        If ``squeue`` does not answer.
    """
    job_ids = [str(j) for j in job_ids]
    bases = list(dict.fromkeys(j.split("_")[0] for j in job_ids))
    states: dict[str, str] = {}
    query = "asking SLURM for job states"
    for base in bases:
        argv = ["squeue", "--noheader", "--array", "--format=%i|%T", f"--jobs={base}"]
        states.update(_ask(argv, parse_squeue, query))
    for base in dict.fromkeys(j.split("_")[0] for j in unknown_jobs(job_ids, states)):
        found = _ask(["scontrol", "--oneliner", "show", "job", base], parse_scontrol, query)
        states.update({k: v for k, v in found.items() if k not in states})
    missing = unknown_jobs(job_ids, states)
    if missing and shutil.which("sacct"):
        argv = ["sacct", "--noheader", "--parsable2", "--format=JobID,State"]
        argv.append(f"--jobs={','.join(dict.fromkeys(j.split('_')[0] for j in missing))}")
        found = _ask(argv, parse_sacct, query)
        states.update({k: v for k, v in found.items() if k not in states})
    return states


def scancel(job_ids: Iterable[str]) -> None:
    """Cancel jobs (and every task of an array job); ids SLURM no longer knows are ignored."""
    job_ids = list(job_ids)
    if job_ids:
        _run(["scancel", *job_ids], "cancelling jobs")
