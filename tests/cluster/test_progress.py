"""Progress off a terminal: plain lines, a bounded number of them, with the time left."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cluster import progress as progress_module
from cluster.progress import PlainProgress

ROOT = Path(__file__).resolve().parents[2]


def test_plain_progress_writes_a_line_per_5_percent_or_30_s(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    with PlainProgress("train.zarr", "samples", show_failed=True, stream=out) as bar:
        task = bar.add_task("simulate", total=100_000, failed=0)
        for i in range(10_000):  # 10 rows per update, 0.06 s each: 10 minutes in all
            clock[0] += 0.06
            bar.update(task, advance=10, failed=i // 1000)
    lines = out.getvalue().splitlines()
    # 20 lines for the 5 % steps, at most one per 30 s besides: 600 s -> at most 20 more
    assert 20 <= len(lines) <= 22 + 600 / 30
    assert lines[0] == (
        "train.zarr: 5000/100000 samples (5%), 0 not ok, 166.7/s, elapsed 0:00:30, "
        "about 0:09:30 left"
    )
    assert lines[-1].startswith("train.zarr: 100000/100000 samples (100%), 9 not ok,")
    assert "left" not in lines[-1]


def test_slow_progress_still_reports_every_30_s(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    out = io.StringIO()
    with PlainProgress("score", "levels", stream=out) as bar:
        task = bar.add_task("score", total=1000)
        for _ in range(610):  # one unit per second: 0.1 % per update
            clock[0] += 1.0
            bar.update(task, advance=1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 20 + 1  # one per 30 s of 610 s, and the last (610) at exit
    assert lines[-1].startswith("score: 610/1000 levels (61%)")
    assert lines[0].startswith("score: 30/1000 levels (3%), 1.0/s, elapsed 0:00:30")


TINY = {
    "name": "tiny",
    "seed": 3,
    "simulator": {"name": "gaussian_linear", "settings": {"dim": 2}},
    "budgets": {"train": 6000, "test": 200, "observations": 2, "chunk_size": 50},
    "ladder": [{"name": "wide", "simplification": 0, "emulator": {"family": "maf"}}],
    "cluster": {
        "profile": "local",
        "overrides": {"n_workers": 1, "dashboard_address": "127.0.0.1:0"},
    },
}


@pytest.mark.slow
def test_simulate_redirected_to_a_file_writes_few_plain_lines(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({**TINY, "output_dir": str(tmp_path / "studies")}))
    log = tmp_path / "log.txt"
    with log.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "pipelines.cli", "simulate", str(config), "--workers", "1"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=600,
        )
    assert done.returncode == 0, done.stderr
    text = log.read_text()
    lines = text.splitlines()
    print(f"{len(lines)} lines, {len(text)} bytes:\n{text}")
    assert "\r" not in text and "\x1b" not in text  # no redrawn bars, no terminal codes
    bars = [line for line in lines if re.match(r"train\.zarr: \d+/6000 samples \(\d+%\)", line)]
    # 120 chunks of the training store: a line per 5 % at most, not one per chunk
    assert 2 <= len(bars) <= 22
    assert bars[-1].startswith("train.zarr: 6000/6000 samples (100%), 0 not ok,")
    assert len(lines) < 80
