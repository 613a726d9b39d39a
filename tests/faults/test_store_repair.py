"""Damaged and missing chunks of finished stores: every reader names them, ``emustudy status``
counts them, and ``emustudy simulate`` / ``run`` recompute just those chunks, byte-identical.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.layout import StudyLayout
from simulators import Stream, make_simulator, sample_seeds
from simulators.errors import StoreError
from simulators.integrity import store_damage
from simulators.store import (
    TIMING_VARIABLES,
    Status,
    create_store,
    load_pairs,
    open_store,
    store_identity,
    write_rows,
)


def _store(path: Path, n: int = 30, chunk: int = 10) -> Path:
    """A finished Gaussian-linear store of ``n`` OK rows in chunks of ``chunk``."""
    simulator = make_simulator("gaussian_linear", dim=2)
    indices = np.arange(n)
    theta = simulator.prior.sample_from_seeds(sample_seeds(0, indices, Stream.PRIOR))
    seeds = sample_seeds(0, indices, Stream.SIMULATION)
    identity = store_identity(simulator, n_samples=n, chunk_size=chunk, campaign_seed=0)
    create_store(path, identity, simulator.prior.names, simulator.output_names)
    x = simulator.simulate(theta, seeds)
    for lo in range(0, n, chunk):
        rows = slice(lo, lo + chunk)
        ok = np.full(chunk, Status.OK, dtype=np.int8)
        write_rows(path, lo, theta=theta[rows], x=x[rows], seed=seeds[rows], status=ok)
    return path


@pytest.mark.parametrize("name", ["x", "theta", "seed", "attempts", "elapsed", "job_id", "host"])
def test_a_deleted_chunk_of_done_rows_is_an_error_for_every_reader(tmp_path, name):
    path = _store(tmp_path / "s.zarr")
    before = open_store(path)[name].values
    chunk = path / name / "c" / "1"
    victim = chunk / "0" if (chunk / "0").exists() else chunk
    victim.unlink()
    with pytest.raises(StoreError, match=re.escape(f"{path / name / 'c' / '1'}") + ".*is missing"):
        open_store(path)[name].values  # noqa: B018 (reading is the test)
    # the other chunks still read, and the damage is reported with the file's name
    np.testing.assert_array_equal(open_store(path)[name][:10].values, before[:10])
    assert [line.split(" ")[0] for line in store_damage(path)] == [str(victim)]
    if name in ("x", "theta"):
        with pytest.raises(StoreError, match="is missing"):
            load_pairs(path)


def test_a_deleted_status_chunk_reads_as_pending_and_counts_as_damage(tmp_path):
    path = _store(tmp_path / "s.zarr")
    assert store_damage(path) == []
    (path / "status" / "c" / "2").unlink()
    status = open_store(path)["status"].values
    assert (status[20:] == Status.PENDING).all() and (status[:20] == Status.OK).all()
    assert store_damage(path) == [
        f"{path / 'status' / 'c' / '2'} is missing or was never written: rows 20:30 read as pending"
    ]


TINY = {
    "name": "tiny",
    "seed": 3,
    "simulator": {"name": "gaussian_linear", "settings": {"dim": 2}},
    "budgets": {"train": 400, "test": 40, "observations": 2, "chunk_size": 200},
    "ladder": [{"name": "wide", "simplification": 0, "emulator": {"family": "maf"}}],
    "cluster": {
        "profile": "local",
        "overrides": {"n_workers": 1, "dashboard_address": "127.0.0.1:0"},
    },
}


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def _contents(root: Path) -> dict[str, bytes]:
    """Every file of the study's stores but the timing chunks (when and where rows ran)."""
    timing = tuple(f"/{name}/c/" for name in TIMING_VARIABLES)
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*.zarr/**/*"))
        if p.is_file() and not any(t in f"/{p.relative_to(root)}" for t in timing)
    }


@pytest.mark.slow
def test_status_names_damaged_chunks_and_simulate_repairs_exactly_those(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "output_dir": str(tmp_path / "studies")}))
    layout = StudyLayout(tmp_path / "studies" / "tiny")
    _invoke("simulate", str(config), "--workers", "1", "--quiet")
    original = _contents(layout.root)
    train, test = layout.simulations("train"), layout.simulations("test")
    deleted = train / "x" / "c" / "1" / "0"
    truncated = test / "seed" / "c" / "0"
    garbled = train / "attempts" / "c" / "1"
    deleted.unlink()
    truncated.write_bytes(truncated.read_bytes()[:-9])
    data = bytearray(garbled.read_bytes())
    data[3] ^= 0xFF
    garbled.write_bytes(bytes(data))
    # chunk 0 of the training store and the observations store are whole
    whole = [*train.glob("*/c/0*"), *layout.simulations("observations").rglob("c/**/*")]
    kept = {p: p.stat().st_mtime_ns for p in whole if p.is_file()}
    assert len(kept) > 10

    status = _invoke("status", str(config))
    assert "damaged: 3 chunks" in status and f"emustudy run {config}" in status
    flat = status.replace("\n", "")
    for file in (deleted, truncated, garbled):
        assert str(file) in flat

    repaired = _invoke("simulate", str(config), "--workers", "1", "--quiet")
    assert "done: 2 ran (simulate-train, simulate-test), 1 already done" in repaired
    assert _contents(layout.root) == original  # byte-identical, timing chunks aside
    # only the damaged chunks were recomputed
    assert all(p.stat().st_mtime_ns == t for p, t in kept.items())
    after = _invoke("status", str(config))
    assert "damaged:" not in after and " damaged " not in after
    again = _invoke("simulate", str(config), "--workers", "1", "--quiet")
    assert "0 ran (nothing new), 3 already done" in again
