"""The external command simulator runs real programs, one process per sample."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from simulators import ConfigError, make_simulator
from simulators.external import ExternalCommand, ExternalSimulatorWarning

UNIFORM = {"distribution": "uniform", "low": 0.0, "high": 1.0}
C_PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    double a = strtod(argv[1], NULL), b = strtod(argv[2], NULL);
    unsigned long long seed = strtoull(argv[3], NULL, 10);
    FILE *out = fopen("out.json", "w");
    fprintf(out, "[%.17g, %.17g, %llu]", a + b, a * b, seed % 1000ULL);
    return fclose(out);
}
"""


def python_command(script: str, *args: str) -> list[str]:
    return [sys.executable, "-c", script, *args]


@pytest.fixture(scope="module")
def c_model(tmp_path_factory) -> Path:
    """A tiny C model, compiled here with gcc."""
    if shutil.which("gcc") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("gcc is missing; CI must build the C model")
        pytest.skip("gcc is missing")
    folder = tmp_path_factory.mktemp("c_model")
    (folder / "model.c").write_text(C_PROGRAM)
    subprocess.run(["gcc", "-O2", "-o", "model", "model.c"], cwd=folder, check=True)
    return folder / "model"


def test_a_compiled_c_program_with_arguments(c_model):
    sim = make_simulator(
        "external",
        command=[str(c_model), "{a}", "{theta[1]}", "{seed}"],
        input_format="args",
        param_names=["a", "b"],
        prior={"a": UNIFORM, "b": {"distribution": "normal", "loc": 0.0, "scale": 2.0}},
        output_names=["sum", "product", "seed_mod"],
        output_file="out.json",
        output_format="json",
    )
    theta = sim.prior.sample(np.random.default_rng(0), 4)
    seeds = np.array([1001, 2_000_000_000_003, 17, 2**63 + 5], dtype=np.uint64)
    x = sim.simulate(theta, seeds)
    np.testing.assert_array_equal(x[:, 0], theta[:, 0] + theta[:, 1])
    np.testing.assert_array_equal(x[:, 1], theta[:, 0] * theta[:, 1])
    np.testing.assert_array_equal(x[:, 2], seeds % 1000)
    assert sim.last_failures == []


def test_npy_in_npy_out_and_workdirs_kept_on_request(tmp_path):
    script = (
        "import numpy as np; t = np.load('params.npy'); "
        "np.save('x.npy', np.array([t.sum(), 2 * t[0]]))"
    )
    sim = ExternalCommand(
        command=python_command(script),
        input_format="npy",
        param_names=["a", "b"],
        prior={"a": UNIFORM, "b": UNIFORM},
        output_names=["sum", "twice_a"],
        output_file="x.npy",
        workdir_root=str(tmp_path / "runs"),
        keep_workdirs=True,
    )
    theta = np.array([[0.25, 0.5], [0.125, 1.0]])
    x = sim.simulate(theta, np.array([1, 2], dtype=np.uint64))
    np.testing.assert_array_equal(x, [[0.75, 0.5], [1.125, 0.25]])
    kept = sorted((tmp_path / "runs").glob("*/sample-*"))
    assert [p.name for p in kept] == ["sample-000000", "sample-000001"]
    assert (kept[1] / "params.npy").is_file() and (kept[1] / "x.npy").is_file()


def test_default_workdirs_are_removed(tmp_path):
    script = "import json; json.dump({'y': 1.5}, open('out.json', 'w'))"
    sim = ExternalCommand(
        command=python_command(script),
        param_names=["a"],
        prior={"a": UNIFORM},
        output_names=["y"],
        output_file="out.json",
        output_format="json",
        workdir_root=str(tmp_path),
    )
    x = sim.simulate(np.array([[0.1]]), np.array([3], dtype=np.uint64))
    assert x.tolist() == [[1.5]]
    assert list(tmp_path.iterdir()) == []


def test_netcdf3_and_netcdf4_outputs_read_through_xarray():
    """Sample 0 writes NetCDF3 with one variable per output, sample 1 NetCDF4 (HDF5) with a
    single variable holding both outputs in order."""
    script = (
        "import json, xarray as xr; p = json.load(open('params.json')); a = p['theta'][0]\n"
        "if p['sample'] == 0:\n"
        "    xr.Dataset({'mean': a + 1.0, 'spread': a * 3.0}).to_netcdf('o.nc', engine='scipy')\n"
        "else:\n"
        "    xr.Dataset({'x': ('output', [a * 3.0, a + 1.0])}).to_netcdf('o.nc', engine='h5netcdf')"
    )
    sim = ExternalCommand(
        command=python_command(script),
        param_names=["a"],
        prior={"a": UNIFORM},
        output_names=["spread", "mean"],
        output_file="o.nc",
        output_format="netcdf",
        parallel=2,
    )
    x = sim.simulate(np.array([[0.5], [0.25]]), np.array([1, 2], dtype=np.uint64))
    assert sim.last_failures == []
    np.testing.assert_allclose(x, [[1.5, 1.5], [0.75, 1.25]])


def test_failed_samples_are_nan_rows_with_reasons():
    script = (
        "import json, sys; p = json.load(open(sys.argv[1])); a = p['theta'][0]\n"
        "if a > 0.7: sys.exit('a too large: model diverged')\n"
        "json.dump([a] if a > 0.4 else [a, a], open('out.json', 'w'))"
    )
    sim = ExternalCommand(
        command=python_command(script, "{params_file}"),
        param_names=["a"],
        prior={"a": UNIFORM},
        output_names=["y"],
        output_file="out.json",
        output_format="json",
    )
    with pytest.warns(ExternalSimulatorWarning, match="2 of 3 samples"):
        x = sim.simulate(np.array([[0.5], [0.9], [0.1]]), np.array([7, 8, 9], dtype=np.uint64))
    assert x[0, 0] == 0.5 and np.isnan(x[1:]).all()
    (diverged, wrong_shape) = sim.last_failures
    assert (diverged.index, diverged.seed, diverged.kind) == (1, 8, "exit")
    assert "model diverged" in diverged.message
    assert (wrong_shape.index, wrong_shape.kind) == (2, "output")
    assert "holds 2 numbers, expected 1" in wrong_shape.message


def test_a_timeout_kills_the_whole_process_group(tmp_path):
    script = tmp_path / "slow.sh"
    script.write_text("#!/bin/sh\nsleep 30 &\necho $! > sleep.pid\nwait\n")
    script.chmod(0o755)
    sim = ExternalCommand(
        command=[str(script)],
        param_names=["a"],
        prior={"a": UNIFORM},
        output_names=["y"],
        timeout_s=0.5,
        workdir_root=str(tmp_path / "runs"),
        keep_workdirs=True,
    )
    began = time.perf_counter()
    with pytest.warns(ExternalSimulatorWarning, match="timeout"):
        x = sim.simulate(np.array([[0.5]]), np.array([1], dtype=np.uint64))
    assert time.perf_counter() - began < 10 and np.isnan(x).all()
    assert sim.last_failures[0].kind == "timeout"
    pid = int(next((tmp_path / "runs").glob("*/sample-000000/sleep.pid")).read_text())
    status = Path(f"/proc/{pid}/status")
    for _ in range(50):  # the killed grandchild is gone, or a zombie awaiting its reaper
        if not status.exists() or "State:\tZ" in status.read_text():
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"sleep (pid {pid}) outlived the timeout")


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"command": "model {a}"}, "must be a non-empty list of strings"),
        ({"command": [sys.executable, "{nope}"]}, "unknown placeholder"),
        ({"command": [sys.executable, "-c", "x = {theta[3]}"]}, "unknown placeholder"),
        ({"command": [sys.executable, "{a:q}"]}, "bad format"),
        ({"command": ["no-such-program-here"]}, "not on the PATH"),
        ({"command": ["./no/such/model"]}, "not an executable file"),
        ({"prior": {}}, r"no spec for \['a'\]"),
        ({"param_names": ["seed"], "prior": {"seed": UNIFORM}}, "reserved"),
        ({"input_format": "csv"}, "'input_format' must be one of"),
        ({"output_format": "hdf5"}, "'output_format' must be one of"),
        ({"timeout_s": 0}, "timeout_s > 0"),
        ({"prior": {"a": {"distribution": "uniform", "low": 1, "high": 0}}}, r"prior\['a'\]"),
    ],
)
def test_bad_settings_name_the_problem(settings, match):
    base = {
        "command": [sys.executable, "{params_file}"],
        "param_names": ["a"],
        "prior": {"a": UNIFORM},
        "output_names": ["y"],
    }
    with pytest.raises(ConfigError, match=match):
        make_simulator("external", **{**base, **settings})


def test_settings_are_json_and_rebuild_the_simulator():
    sim = ExternalCommand(
        command=[sys.executable, "-c", "pass"],
        param_names=["a"],
        prior={"a": UNIFORM},
        output_names=["y"],
    )
    assert ExternalCommand(**json.loads(json.dumps(sim.settings))).settings == sim.settings
