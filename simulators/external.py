"""A simulator that runs any executable (Fortran, C, Julia, a script) once per sample.

For each sample, in its own working directory, the parameters are written to a file
(``input_format="json"``: ``{"theta": [...], "params": {name: value}, "seed": s, "sample":
i}``; ``"npy"``: ``theta`` as a float64 ``.npy``) or only passed as arguments (``"args"``); the
command (a list, run without a shell) is formatted with the placeholders ``{params_file}``,
``{workdir}``, ``{seed}``, ``{sample}``, ``{theta[i]}`` and each parameter's ``{name}``,
optionally with a format (``{a:.3f}``); other text in braces (a script's dict, Julia's
``Vector{Float64}``) is left as is, but an argument that is a lone unknown ``{word}`` or an
out-of-range ``{theta[i]}`` is an error;
the process gets ``EMUSTUDY_SEED`` and ``EMUSTUDY_WORKDIR`` in its environment too. It must
write ``output_file`` (relative to its working directory) as ``npy`` (any shape holding
``n_outputs`` numbers), ``json`` (a list of numbers, or an object keyed by output name) or
``netcdf`` (one variable per output name, or a single variable of ``n_outputs`` numbers).

A sample whose command fails, times out, or writes a missing or malformed output gives a row
of NaN (the campaign stores it as invalid) and a :class:`ExternalSimulatorWarning`; the
details are in :attr:`ExternalCommand.last_failures` (set by the latest ``simulate`` call on
that object, in the process that made it: a campaign task reads it right after simulating,
e.g. to store ``kind == "timeout"`` rows as timed out). On timeout the whole process group is
killed, so no grandchild is left behind.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from simulators._prior_settings import prior_from_settings
from simulators.base import Simulator
from simulators.errors import ConfigError, EmustudyError

__all__ = ["ExternalCommand", "SampleFailure", "ExternalSimulatorWarning"]

_INPUT_FORMATS = ("json", "npy", "args")
_OUTPUT_FORMATS = ("npy", "json", "netcdf")
_RESERVED = ("params_file", "workdir", "seed", "sample", "theta")
_PLACEHOLDER = re.compile(r"\{(?P<key>[A-Za-z_]\w*(?:\[\d+\])?)(?::(?P<spec>[^{}]*))?\}")


class ExternalSimulatorWarning(RuntimeWarning):
    """Some samples of an external command failed; their rows are NaN."""


@dataclass(frozen=True)
class SampleFailure:
    """Why one sample of an external command has no output.

    Attributes
    ----------
    index : int
        Row in the batch.
    seed : int
    kind : {"exit", "timeout", "output"}
        Non-zero exit status, time limit hit, or a missing or malformed output file.
    message : str
        What went wrong, with the tail of the command's stderr where there is one.
    workdir : str
        The sample's working directory (removed unless ``keep_workdirs``).
    """

    index: int
    seed: int
    kind: Literal["exit", "timeout", "output"]
    message: str
    workdir: str


class _OutputError(EmustudyError):
    pass


class ExternalCommand(Simulator):
    """Run ``command`` once per sample and read its output back (see the module docstring).

    Parameters
    ----------
    command : list of str
        Program and arguments, with placeholders; a relative program path is made absolute.
    param_names : list of str
        Theta's columns, usable as ``{name}`` placeholders.
    prior : dict
        A prior spec per parameter name, e.g. ``{"a": {"distribution": "uniform", "low": 0,
        "high": 1}}``.
    output_names : list of str
        The outputs, in the order of x's columns.
    output_file : str
        Path the command writes, relative to its working directory.
    input_format : {"json", "npy", "args"}
    output_format : {"npy", "json", "netcdf"}
    timeout_s : float
        Time limit per sample.
    workdir_root : str, optional
        Where the per-sample directories go (default: the system's temporary directory).
    keep_workdirs : bool
        Keep the per-sample directories (for debugging) instead of removing them.
    parallel : int
        Samples run at once (threads, each waiting on its own process).

    Notes
    -----
    The cost is the command's plus the start of a process per sample: ~100 ms for a Python
    script on this shared 2-core machine (``benchmarks/simulator_costs.py``), a few ms for a
    compiled program; ``parallel=2`` ran a Python script 1.7x faster.
    """

    name = "external"

    def __init__(
        self,
        command: list[str],
        param_names: list[str],
        prior: dict[str, dict[str, Any]],
        output_names: list[str],
        output_file: str = "output.npy",
        input_format: str = "json",
        output_format: str = "npy",
        timeout_s: float = 60.0,
        workdir_root: str | None = None,
        keep_workdirs: bool = False,
        parallel: int = 1,
    ) -> None:
        if isinstance(command, str) or not command or not all(isinstance(a, str) for a in command):
            raise ConfigError(
                f"external setting 'command' must be a non-empty list of strings (no shell), "
                f"got {command!r}; e.g. command=['./model', '{{params_file}}']"
            )
        for field, value, allowed in (
            ("input_format", input_format, _INPUT_FORMATS),
            ("output_format", output_format, _OUTPUT_FORMATS),
        ):
            if value not in allowed:
                raise ConfigError(
                    f"external setting {field!r} must be one of {list(allowed)}, got {value!r}"
                )
        clash = sorted(set(param_names) & set(_RESERVED))
        if clash or len(set(param_names)) != len(param_names):
            raise ConfigError(
                f"external setting 'param_names' must be distinct and avoid the reserved "
                f"placeholders {list(_RESERVED)}, got {list(param_names)}"
            )
        missing = [n for n in param_names if n not in (prior or {})]
        if missing:
            raise ConfigError(
                f"external setting 'prior' has no spec for {missing}; give one per parameter, "
                f"e.g. prior={{{missing[0]!r}: {{'distribution': 'uniform', 'low': 0, "
                f"'high': 1}}}}"
            )
        if not output_names or len(set(output_names)) != len(output_names):
            raise ConfigError(
                f"external setting 'output_names' must be a non-empty list of distinct "
                f"names, got {output_names!r}"
            )
        if not timeout_s > 0 or int(parallel) < 1:
            raise ConfigError(
                f"external settings need timeout_s > 0 and parallel >= 1, "
                f"got timeout_s={timeout_s}, parallel={parallel}"
            )
        program = command[0]
        if os.sep in program:
            program = os.path.abspath(program)  # not resolve(): a venv python is a symlink
            if not os.access(program, os.X_OK):
                raise ConfigError(f"external command {program!r} is not an executable file")
        elif shutil.which(program) is None:
            raise ConfigError(f"external command {program!r} is not on the PATH")
        self.command = [program, *command[1:]]
        self.param_names = tuple(param_names)
        self._prior_spec = {n: dict(prior[n]) for n in param_names}
        self.prior = prior_from_settings(
            "external", self.param_names, self._prior_spec, self._prior_spec
        )
        self.output_names = tuple(output_names)
        self.output_file, self.input_format, self.output_format = (
            output_file,
            input_format,
            output_format,
        )
        self.timeout_s, self.parallel = float(timeout_s), int(parallel)
        self.workdir_root, self.keep_workdirs = workdir_root, bool(keep_workdirs)
        self.last_failures: list[SampleFailure] = []
        known = {*_RESERVED[:-1], *self.param_names}
        known |= {f"theta[{i}]" for i in range(len(self.param_names))}
        for argument in self.command[1:]:
            for match in _PLACEHOLDER.finditer(argument):
                # a whole argument in braces, or theta[i], is surely meant as a placeholder
                meant = match[0] == argument or match["key"].startswith("theta[")
                if match["key"] not in known and meant:
                    raise ConfigError(
                        f"external setting 'command' has an unknown placeholder "
                        f"{match[0]!r} in {argument!r}; known: {sorted(known)}"
                    )
        try:
            self._arguments(np.zeros(len(self.param_names)), 0, 0, Path("w"))
        except ValueError as err:
            raise ConfigError(f"external setting 'command' has a bad format: {err}") from err

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "command": list(self.command),
            "param_names": list(self.param_names),
            "prior": self._prior_spec,
            "output_names": list(self.output_names),
            "output_file": self.output_file,
            "input_format": self.input_format,
            "output_format": self.output_format,
            "timeout_s": self.timeout_s,
            "workdir_root": self.workdir_root,
            "keep_workdirs": self.keep_workdirs,
            "parallel": self.parallel,
        }

    def _arguments(self, theta: np.ndarray, seed: int, index: int, workdir: Path) -> list[str]:
        values = {
            "params_file": str(workdir / f"params.{self.input_format}"),
            "workdir": str(workdir),
            "seed": seed,
            "sample": index,
            "theta": [float(t) for t in theta],
            **{n: float(t) for n, t in zip(self.param_names, theta, strict=True)},
        }

        def replace(match: re.Match[str]) -> str:
            key = match["key"]
            if key.startswith("theta["):
                value = values["theta"][int(key[6:-1])]
            elif key in values:
                value = values[key]
            else:
                return match[0]
            return format(value, match["spec"] or "")

        return [self.command[0], *(_PLACEHOLDER.sub(replace, a) for a in self.command[1:])]

    def _write_input(self, theta: np.ndarray, seed: int, index: int, workdir: Path) -> None:
        if self.input_format == "json":
            record = {
                "theta": [float(t) for t in theta],
                "params": {n: float(t) for n, t in zip(self.param_names, theta, strict=True)},
                "seed": seed,
                "sample": index,
            }
            (workdir / "params.json").write_text(json.dumps(record))
        elif self.input_format == "npy":
            np.save(workdir / "params.npy", np.asarray(theta, dtype=np.float64))

    def _read_output(self, path: Path) -> np.ndarray:
        if not path.is_file():
            raise _OutputError(f"the command wrote no {path.name!r}")
        n = len(self.output_names)
        try:
            if self.output_format == "npy":
                values = np.load(path, allow_pickle=False)
            elif self.output_format == "json":
                data = json.loads(path.read_text())
                values = [data[k] for k in self.output_names] if isinstance(data, dict) else data
            else:
                values = self._read_netcdf(path)
            x = np.asarray(values, dtype=np.float64).ravel()
        except (ValueError, KeyError, TypeError, OSError) as err:
            raise _OutputError(f"cannot read {path.name!r} as {self.output_format}: {err}") from err
        if x.shape != (n,):
            raise _OutputError(f"{path.name!r} holds {x.size} numbers, expected {n}")
        return x

    def _read_netcdf(self, path: Path) -> np.ndarray:
        import xarray as xr

        with xr.open_dataset(path) as ds:
            if all(name in ds.data_vars for name in self.output_names):
                return np.array([np.asarray(ds[k].values).item() for k in self.output_names])
            if len(ds.data_vars) == 1:
                return np.asarray(next(iter(ds.data_vars.values())).values)
            raise _OutputError(
                f"{path.name!r} has variables {sorted(ds.data_vars)}; expected "
                f"{list(self.output_names)} or a single variable"
            )

    def _run_one(
        self, theta: np.ndarray, seed: int, index: int, batch_dir: Path
    ) -> np.ndarray | SampleFailure:
        workdir = batch_dir / f"sample-{index:06d}"
        workdir.mkdir()
        self._write_input(theta, seed, index, workdir)
        env = {**os.environ, "EMUSTUDY_SEED": str(seed), "EMUSTUDY_WORKDIR": str(workdir)}
        stderr_path = workdir / "stderr.txt"
        with open(workdir / "stdout.txt", "wb") as out, open(stderr_path, "wb") as err:
            process = subprocess.Popen(
                self._arguments(theta, seed, index, workdir),
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,  # its own process group, killed whole on timeout
            )
            try:
                code = process.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                return SampleFailure(
                    index, seed, "timeout", f"no result within {self.timeout_s} s", str(workdir)
                )
        if code != 0:
            tail = stderr_path.read_bytes()[-500:].decode(errors="replace").strip()
            message = f"exit status {code}" + (f"; stderr: {tail}" if tail else "")
            return SampleFailure(index, seed, "exit", message, str(workdir))
        try:
            return self._read_output(workdir / self.output_file)
        except _OutputError as err:
            return SampleFailure(index, seed, "output", str(err), str(workdir))

    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=np.float64)
        seeds = np.asarray(seeds, dtype=np.uint64)
        if theta.ndim != 2 or theta.shape[1] != len(self.param_names):
            raise ConfigError(
                f"external theta must have shape (batch, {len(self.param_names)}) for "
                f"{list(self.param_names)}, got {theta.shape}"
            )
        if self.workdir_root is not None:
            Path(self.workdir_root).mkdir(parents=True, exist_ok=True)
        batch_dir = Path(tempfile.mkdtemp(prefix="emustudy-external-", dir=self.workdir_root))
        jobs = [(theta[i], int(seeds[i]), i, batch_dir) for i in range(len(seeds))]
        try:
            if self.parallel > 1:
                with ThreadPoolExecutor(self.parallel) as pool:
                    results = list(pool.map(lambda job: self._run_one(*job), jobs))
            else:
                results = [self._run_one(*job) for job in jobs]
        finally:
            if not self.keep_workdirs:
                shutil.rmtree(batch_dir, ignore_errors=True)
        x = np.full((len(seeds), len(self.output_names)), np.nan)
        self.last_failures = [r for r in results if isinstance(r, SampleFailure)]
        for i, result in enumerate(results):
            if not isinstance(result, SampleFailure):
                x[i] = result
        if self.last_failures:
            first = self.last_failures[0]
            warnings.warn(
                f"{len(self.last_failures)} of {len(seeds)} samples of {self.command[0]!r} "
                f"failed and are NaN; first: sample {first.index} ({first.kind}): "
                f"{first.message}",
                ExternalSimulatorWarning,
                stacklevel=2,
            )
        return x
