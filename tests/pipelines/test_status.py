"""`emustudy status` points at the dashboard of a campaign while its cluster runs."""

from __future__ import annotations

import json

import yaml

from pipelines.config import load_config
from pipelines.layout import StudyLayout
from pipelines.status import study_status
from pipelines.study import study_client

TINY = {
    "name": "watched",
    "simulator": {"name": "gaussian_linear", "settings": {"dim": 2}},
    "budgets": {"train": 100, "test": 20, "observations": 1},
    "ladder": [{"name": "only", "simplification": 0, "emulator": {"family": "maf"}}],
    "cluster": {
        "profile": "local",
        "overrides": {"n_workers": 1, "dashboard_address": "127.0.0.1:0"},
    },
}


def test_a_running_cluster_publishes_its_dashboard_and_withdraws_it(tmp_path):
    path = tmp_path / "watched.yaml"
    path.write_text(yaml.safe_dump({**TINY, "output_dir": str(tmp_path / "studies")}))
    config = load_config(path)
    layout = StudyLayout(config.study_dir)
    with study_client(config, layout) as client:
        boards = study_status(config).dashboards
        assert [board["url"] for board in boards] == [client.dashboard_link]
        assert boards[0]["url"].startswith("http://127.0.0.1:")
        record = next((layout.root / "dashboards").glob("*.json"))
        assert json.loads(record.read_text())["scheduler"] == client.scheduler.address
    assert study_status(config).dashboards == []
    assert {row.state for row in study_status(config).rows} == {"not started"}
