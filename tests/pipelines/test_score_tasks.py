"""The score stage as many tasks on a real two-worker Dask cluster, and what its costs count."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from distributed import Client, get_task_stream

from cluster.client import cluster_client
from cluster.task_clock import measured
from inference.scores import load_scores
from pipelines import stages
from pipelines.config import StudyConfig, load_config
from pipelines.layout import StudyLayout
from pipelines.report_data import emulator_speedup, unit_costs
from pipelines.study import run_stages
from pipelines.timings import record_timings
from simulators.store import open_store

pytestmark = pytest.mark.slow

SMALL = {
    "name": "blocks",
    "seed": 4,
    "simulator": {"name": "gaussian_linear", "settings": {"dim": 2}},
    "budgets": {"train": 400, "test": 100, "observations": 4, "chunk_size": 200},
    "ladder": [
        {
            "name": "wide",
            "simplification": 0,
            "emulator": {"family": "maf", "transforms": 1, "hidden_features": 16, "max_epochs": 5},
        },
    ],
    "inference": {
        "hidden_features": 16,
        "num_transforms": 1,
        "stop_after_epochs": 3,
        "replicates": 2,
    },
    "scores": {
        "posterior_samples": 200,
        "sbc_samples": 30,
        "ppc_samples": 20,
        "lc2st_null": 5,
        "tasks": {"pairs": 25, "observations": 1},
    },
    "cluster": {"profile": "local", "overrides": {"dashboard_address": "127.0.0.1:0"}},
}


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    with cluster_client("local", n_workers=2, dashboard_address="127.0.0.1:0") as client:
        yield client


@pytest.fixture(scope="module")
def trained(tmp_path_factory, client) -> tuple[StudyConfig, StudyLayout]:
    """A study with one emulator level and the ceiling, trained up to its posteriors."""
    folder = tmp_path_factory.mktemp("blocks")
    path = folder / "blocks.yaml"
    path.write_text(yaml.safe_dump({**SMALL, "output_dir": str(folder / "studies")}))
    config = load_config(path)
    levels = [*config.ladder, None]
    run_stages(config, ["simulate", "train-emulator", "emulate", "infer"], levels, client=client)
    return config, StudyLayout(config.study_dir)


@pytest.fixture(scope="module")
def scored(trained, client) -> tuple[list[dict], list[stages.StageOutcome]]:
    """The score stage of both units, with Dask's record of every task it ran."""
    config, layout = trained
    with get_task_stream(client) as stream:
        outcomes = stages.score(config, layout, client, [*config.ladder, None])
    record_timings(layout, outcomes)
    return stream.data, outcomes


def _unit_tasks(stream: list[dict]) -> dict[str, list[tuple[str, float, float]]]:
    """Per unit: (worker, start, stop) of each score task it ran."""
    found = defaultdict(list)
    for task in stream:
        parts = str(task["key"]).split("-")
        if parts[0] != "score" or parts[1] == "count":
            continue
        compute = [s for s in task["startstops"] if s["action"] == "compute"]
        for span in compute:
            found[parts[2]].append((task["worker"], span["start"], span["stop"]))
    return found


def test_two_levels_are_scored_at_once_on_two_workers(scored) -> None:
    """Each unit's blocks spread over both workers, and blocks of the two units overlap in time
    on different workers. Scoring a unit as one task (as before) puts a unit on one worker."""
    stream, outcomes = scored
    assert sorted(o.level for o in outcomes if o.ran) == ["ceiling", "wide"]
    tasks = _unit_tasks(stream)
    assert set(tasks) == {"ceiling", "wide"}
    for unit, spans in tasks.items():
        # inputs, 2 replicates x (4 observation blocks + 4 pair blocks + finish), extras, write
        assert len(spans) == 1 + 2 * (4 + 4 + 1) + 2, unit
        assert len({worker for worker, _, _ in spans}) == 2, f"{unit} ran on one worker only"
    overlapping = [
        (a, b)
        for a in tasks["ceiling"]
        for b in tasks["wide"]
        if a[0] != b[0] and a[1] < b[2] and b[1] < a[2]
    ]
    assert overlapping, "no score task of one unit ran while one of the other ran elsewhere"


def test_blocked_scores_are_written_whole(trained, scored) -> None:
    config, layout = trained
    for unit in ("ceiling", "wide"):
        ds = load_scores(layout.level(unit).scores)
        assert ds.sizes["replicate"] == 2 and ds.sizes["observation"] == 4
        assert ds.sizes["test_pair"] == 100
        assert np.isfinite(ds["c2st"]).all() and np.isfinite(ds["lc2st_statistic"]).all()
        assert "misspecification_mmd_rate" in ds
    assert "emulator_nll" in load_scores(layout.level("wide").scores)


def test_recorded_core_seconds_are_the_tasks_own(trained, scored) -> None:
    """A unit's recorded core seconds are at most what its tasks ran on the workers (never
    time they waited for the other unit's tasks, nor for a core other processes held), and not
    nothing. (How close they come to the tasks' wall time depends on the machine's load.)"""
    config, layout = trained
    stream, _ = scored
    tasks = _unit_tasks(stream)
    for unit, spans in tasks.items():
        timings = json.loads((layout.level(unit).method_root / "timings.json").read_text())
        computing = sum(stop - start for _, start, stop in spans)
        assert timings["score_cpu"] <= 1.1 * computing + 0.5, unit
        assert timings["score_cpu"] > 0.5, unit  # 4 C2STs per replicate: seconds of CPU
        assert timings["score"] >= timings["score_cpu"] / 2  # two workers at most
        assert unit_costs(config, layout, unit)["score_s"] == timings["score_cpu"]


def _spin(seconds: float) -> float:
    """Busy for ``seconds`` of CPU."""
    began = time.process_time()
    while time.process_time() - began < seconds:
        pass
    return seconds


def test_a_queued_task_records_its_own_cpu_not_its_wait(client) -> None:
    """Two tasks on one single-threaded worker: the second waits ~1 s behind the first but
    records about its own 0.3 s; a sleeping task records almost none."""
    worker = sorted(client.scheduler_info()["workers"])[0]
    first = client.submit(measured, "a", _spin, 1.0, workers=[worker], pure=False)
    second = client.submit(measured, "b", _spin, 0.3, workers=[worker], pure=False)
    asleep = client.submit(measured, "c", time.sleep, 0.5, workers=[worker], pure=False)
    a, b, c = client.gather([first, second, asleep])
    assert a.clock == b.clock == "process" and a.worker == b.worker == worker
    assert b.began >= a.ended - 0.05  # it did wait behind the first
    assert 0.3 <= b.cpu_s < 0.5
    assert 1.0 <= a.cpu_s < 1.3
    assert c.cpu_s < 0.1 and c.wall_s >= 0.5


def test_simulator_cost_is_the_ledgers_mean(trained, scored) -> None:
    config, layout = trained
    elapsed = np.concatenate(
        [
            open_store(layout.simulations(r))["elapsed"].values
            for r in ("train", "test", "observations")
        ]
    )
    costs = unit_costs(config, layout, "wide")
    assert costs["simulator_seconds_per_run"] == pytest.approx(elapsed.mean())
    assert costs["simulator_core_hours"] == pytest.approx(400 * elapsed.mean() / 3600)
    emulated = open_store(layout.level("wide").emulated)["elapsed"].values.mean()
    assert emulator_speedup(layout, "wide") == pytest.approx(elapsed.mean() / emulated)
    assert np.isfinite(costs["emulator-error_s"]) and costs["emulator-error_s"] > 0


def test_costs_read_a_study_that_recorded_wall_seconds_only(trained, tmp_path: Path) -> None:
    """timings.json written before core seconds were measured still gives costs."""
    config, layout = trained
    folder = layout.level("wide").method_root
    saved = (folder / "timings.json").read_text()
    try:
        (folder / "timings.json").write_text(json.dumps({"infer": 12.5, "score": 40.0}))
        costs = unit_costs(config, layout, "wide")
        assert costs["infer_s"] == 12.5 and costs["score_s"] == 40.0
    finally:
        (folder / "timings.json").write_text(saved)
