"""The report's dose-response of a sweep: built from the score stores of the sweep's levels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
import yaml

from pipelines import figures
from pipelines.config import load_config
from pipelines.report_data import _dose_responses

CONFIG = Path(__file__).parents[2] / "configs" / "control.yaml"


def _scores(value: float, rng: np.random.Generator) -> xr.Dataset:
    c2st = value + 0.01 * rng.standard_normal((1, 2, 4))  # level x replicate x observation
    return xr.Dataset({"c2st": (("level", "replicate", "observation"), c2st)})


def test_a_sweep_gets_a_curve_crossing_where_the_scores_do(tmp_path: Path) -> None:
    raw = yaml.safe_load(CONFIG.read_text())
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({**raw, "output_dir": str(tmp_path)}))
    config = load_config(tmp_path / "c.yaml")
    rng = np.random.default_rng(0)
    names = [level.name for level in config.ladder]
    # C2ST falls with the training runs, from 0.9 at 60 to 0.5 at 4000: below 0.65 from 661 on
    truth = dict(zip(names, [0.9, 0.85, 0.8, 0.72, 0.6, 0.55, 0.52, 0.5], strict=True))
    scores = {name: _scores(value, rng) for name, value in truth.items()}
    curves = _dose_responses(config, scores)
    knob, curve = curves["data"]
    assert knob == "emulator.train_samples" and not curve.increasing
    assert 363 < curve.crossing < 661
    assert curve.crossing_low <= curve.crossing <= curve.crossing_high
    assert figures.dose_response_curve(curve, knob, "C2ST")[:4] == b"\x89PNG"
    # fewer than 4 scored levels: no curve is stated
    assert _dose_responses(config, {name: scores[name] for name in names[:3]}) == {}
