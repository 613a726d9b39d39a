"""Observation and reference-sample files: every format round-trips, bad files are refused."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from inference.observation_files import read_observations, read_reference_samples
from inference.reference import SamplesReference
from simulators import ConfigError

OUTPUTS = ("x_0", "x_1", "x_2")
PARAMS = ("theta_0", "theta_1")


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.normal(size=(5, 3)) * 1e3, rng.uniform(-1, 1, size=(5, 2))


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n")
    return path


def csv_rows(x: np.ndarray, theta: np.ndarray | None = None) -> list[list[str]]:
    values = x if theta is None else np.concatenate([theta[:, ::-1], x[:, ::-1]], axis=1)
    return [[repr(float(v)) for v in row] for row in values]


def dataset(x: np.ndarray, theta: np.ndarray | None, reverse: bool = True) -> xr.Dataset:
    """A dataset with the output (and param) coordinates in reverse order when ``reverse``."""
    order = slice(None, None, -1) if reverse else slice(None)
    variables = {
        "x": xr.DataArray(
            x[:, order], dims=("observation", "output"), coords={"output": list(OUTPUTS[order])}
        )
    }
    if theta is not None:
        variables["theta"] = xr.DataArray(
            theta[:, order], dims=("observation", "param"), coords={"param": list(PARAMS[order])}
        )
    return xr.Dataset(variables)


def save(ds: xr.Dataset, path: Path) -> Path:
    ds.to_zarr(path) if path.suffix == ".zarr" else ds.to_netcdf(path)
    return path


def test_csv_round_trips_with_columns_in_any_order(tmp_path, data) -> None:
    x, theta = data
    path = write_csv(tmp_path / "obs.csv", [*PARAMS[::-1], *OUTPUTS[::-1]], csv_rows(x, theta))
    observed = read_observations(path, OUTPUTS, PARAMS)
    np.testing.assert_array_equal(observed.x, x)
    np.testing.assert_array_equal(observed.theta, theta)
    assert observed.source == str(path)
    path = write_csv(tmp_path / "x_only.csv", list(OUTPUTS), csv_rows(x))
    observed = read_observations(path, OUTPUTS, PARAMS)
    np.testing.assert_array_equal(observed.x, x)
    assert observed.theta is None


def test_npy_round_trips(tmp_path, data) -> None:
    x, _ = data
    np.save(tmp_path / "obs.npy", x)
    observed = read_observations(tmp_path / "obs.npy", OUTPUTS)
    np.testing.assert_array_equal(observed.x, x)
    assert observed.theta is None


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_netcdf_and_zarr_round_trip_by_coordinate_names(tmp_path, data, suffix) -> None:
    x, theta = data
    path = save(dataset(x, theta), tmp_path / f"obs{suffix}")
    observed = read_observations(path, OUTPUTS, PARAMS)
    np.testing.assert_array_equal(observed.x, x)
    np.testing.assert_array_equal(observed.theta, theta)
    assert read_observations(path, OUTPUTS).theta is None
    path = save(dataset(x, None), tmp_path / f"x_only{suffix}")
    assert read_observations(path, OUTPUTS, PARAMS).theta is None


@pytest.mark.parametrize("suffix", [".npy", ".nc", ".zarr"])
def test_reference_samples_round_trip_and_serve_the_first_draws(tmp_path, suffix) -> None:
    draws = np.random.default_rng(1).normal(size=(3, 50, 2))
    path = tmp_path / f"ref{suffix}"
    if suffix == ".npy":
        np.save(path, draws)
    else:
        da = xr.DataArray(
            draws[..., ::-1],
            dims=("observation", "draw", "param"),
            coords={"param": list(PARAMS[::-1])},
        )
        save(xr.Dataset({"theta": da}), path)
    np.testing.assert_array_equal(read_reference_samples(path, PARAMS), draws)
    x_obs = np.arange(9.0).reshape(3, 3)
    reference = SamplesReference.from_file(path, PARAMS, x_obs=x_obs)
    assert reference.kind == "samples"
    np.testing.assert_array_equal(reference.sample(x_obs, 20, seed=0), draws[:, :20])
    with pytest.raises(ConfigError, match="holds 50; ask for at most 50"):
        reference.sample(x_obs, 51, seed=0)
    with pytest.raises(ConfigError, match="for 3 observations, but 2 were given"):
        reference.sample(x_obs[:2], 10, seed=0)
    with pytest.raises(ConfigError, match="differ from those"):
        reference.sample(x_obs + 1, 10, seed=0)
    with pytest.raises(ConfigError, match="differ from those"):
        reference.sample(x_obs[:, :2], 10, seed=0)


def refused(path: Path, *fragments: str) -> None:
    """Reading ``path`` raises a ConfigError whose message names the file and ``fragments``."""
    with pytest.raises(ConfigError) as info:
        read_observations(path, OUTPUTS, PARAMS)
    message = str(info.value)
    assert str(path) in message, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_bad_csv_files_are_refused_naming_file_row_and_fix(tmp_path, data) -> None:
    x, theta = data
    rows = csv_rows(x)
    refused(write_csv(tmp_path / "a.csv", ["x_0", "x_1"], [r[:2] for r in rows]), "line 1",
            "missing outputs ['x_2']", "rename or remove")  # fmt: skip
    refused(write_csv(tmp_path / "b.csv", ["x_0", "x_1", "x_2", "id"], [r + ["7"] for r in rows]),
            "unknown columns ['id']")  # fmt: skip
    holes = [list(r) for r in rows]
    holes[3][1] = ""
    refused(write_csv(tmp_path / "c.csv", list(OUTPUTS), holes),
            "observation 3 (row 3", "['x_1']", "Drop those rows")  # fmt: skip
    infinite = [list(r) for r in rows]
    infinite[2][0] = "inf"
    refused(write_csv(tmp_path / "d.csv", list(OUTPUTS), infinite), "observation 2", "['x_0']")
    words = [list(r) for r in rows]
    words[1][2] = "n/a"
    refused(write_csv(tmp_path / "e.csv", list(OUTPUTS), words),
            "row 1 (line 3)", "not a number")  # fmt: skip
    ragged = [list(r) for r in rows]
    ragged[4] = ragged[4][:2]
    refused(write_csv(tmp_path / "f.csv", list(OUTPUTS), ragged),
            "row 4 (line 6) has 2 values", "one value per column")  # fmt: skip
    refused(write_csv(tmp_path / "g.csv", ["theta_0", *OUTPUTS], [["0.5", *r] for r in rows]),
            "not ['theta_1']", "every parameter or none")  # fmt: skip
    bad_theta = csv_rows(x, theta)
    bad_theta[0][0] = "nan"  # theta_1 (reversed columns)
    refused(write_csv(tmp_path / "h.csv", [*PARAMS[::-1], *OUTPUTS[::-1]], bad_theta),
            "parameters of observation 0", "['theta_1']")  # fmt: skip
    refused(write_csv(tmp_path / "i.csv", list(OUTPUTS), []), "at least one row")


def test_bad_npy_netcdf_and_zarr_files_are_refused(tmp_path, data) -> None:
    x, theta = data
    np.save(tmp_path / "wide.npy", np.concatenate([x, x], axis=1))
    refused(tmp_path / "wide.npy", "(n_obs, 3)", "shape (5, 6)", "reshape")
    with_nan = x.copy()
    with_nan[4, 2] = np.nan
    np.save(tmp_path / "nan.npy", with_nan)
    refused(tmp_path / "nan.npy", "observation 4 (row 4", "['x_2']")
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    refused(tmp_path / "junk.npy", "cannot read it", "np.save")
    (tmp_path / "junk.nc").write_bytes(b"not a netcdf file")
    refused(tmp_path / "junk.nc", "cannot open it as a netcdf dataset")
    transposed = xr.Dataset({"x": xr.DataArray(x.T, dims=("output", "observation"))})
    refused(save(transposed, tmp_path / "t.nc"), "dims ('output', 'observation')", "transpose")
    wrong_names = dataset(x, theta).assign_coords(output=["a", "b", "c"])
    refused(save(wrong_names, tmp_path / "names.zarr"), "missing ['x_0', 'x_1', 'x_2']")
    nan_theta = dataset(x, np.where(np.arange(5)[:, None] == 1, np.inf, theta))
    refused(save(nan_theta, tmp_path / "inf.zarr"), "parameters of observation 1 (row 1")
    renamed = xr.Dataset({"outputs": dataset(x, None)["x"]})
    refused(save(renamed, tmp_path / "r.nc"), "no variable 'x'")
    refused(tmp_path / "obs.txt", "unknown observation file format '.txt'")
    refused(tmp_path / "absent.csv", "no such file")


def test_bad_reference_sample_files_are_refused(tmp_path) -> None:
    draws = np.random.default_rng(2).normal(size=(3, 10, 2))
    draws[1, 7, 0] = np.nan
    np.save(tmp_path / "nan.npy", draws)
    with pytest.raises(ConfigError, match=re.escape("observation 1 (row 1")) as info:
        read_reference_samples(tmp_path / "nan.npy", PARAMS)
    assert str(tmp_path / "nan.npy") in str(info.value)
    np.save(tmp_path / "flat.npy", draws[0])
    with pytest.raises(ConfigError, match=re.escape("(n_obs, n_draws, 2)")):
        read_reference_samples(tmp_path / "flat.npy", PARAMS)
    with pytest.raises(ConfigError, match="not CSV"):
        read_reference_samples(write_csv(tmp_path / "r.csv", list(PARAMS), [["1", "2"]]), PARAMS)
