"""The quickstart study end to end on a real local Dask cluster: science, idempotence, refusal."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from inference.scores import load_scores
from pipelines.cli import app
from pipelines.layout import StudyLayout
from pipelines.study import run_study
from simulators.errors import StaleOutputError

QUICKSTART = Path(__file__).parents[2] / "configs" / "quickstart.yaml"

pytestmark = pytest.mark.slow


def _snapshot(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def study(quickstart_study):
    return quickstart_study


def test_every_output_of_the_study_folder_exists(study):
    config, run = study
    layout = StudyLayout(config.study_dir)
    assert layout.config.exists()
    for role in ("train", "test", "observations"):
        assert layout.simulations(role).exists()
    for name in ("full", "reduced", "crude"):
        level = layout.level(name)
        for path in (level.emulator, level.emulated, level.posterior, level.scores):
            assert path.exists(), path
    assert layout.level("ceiling").posterior.exists() and layout.level("ceiling").scores.exists()
    assert (layout.report / "index.html").exists() and (layout.report / "scores.csv").exists()
    figures = {p.stem for p in (layout.report / "figures").glob("*.png")}
    assert {
        "c2st_vs_level",
        "nltp_vs_level",
        "c2st_vs_emulator_c2st",
        "c2st_vs_emulator_nll",
        "pair_plot",
        "sbc_histograms",
        "coverage_curves",
        "cost_quality_frontier",
    } <= figures, figures
    assert all(outcome.ran for outcome in run.outcomes)


def test_the_science_works(study):
    config, _ = study
    layout = StudyLayout(config.study_dir)
    c2st = {
        n: load_scores(layout.level(n).scores)["c2st"].values for n in ("ceiling", "full", "crude")
    }
    # level x replicate x observation
    assert c2st["ceiling"].shape == (1, config.inference.replicates, config.budgets.observations)
    assert c2st["ceiling"].mean() <= 0.6, c2st
    assert c2st["crude"].mean() >= c2st["full"].mean() + 0.1, c2st
    table = pd.read_csv(layout.report / "scores.csv").set_index("level")
    np.testing.assert_allclose(table.loc["crude", "c2st_mean"], c2st["crude"].mean())
    # the most simplified emulator is measurably worse at reproducing the simulator
    assert table.loc["crude", "emulator_nll"] > table.loc["full", "emulator_nll"]
    assert table.loc["crude", "emulator_c2st"] > table.loc["full", "emulator_c2st"]


def test_second_run_recomputes_nothing(study):
    config, _ = study
    before = _snapshot(config.study_dir)
    again = run_study(config, progress=False)
    assert again.recomputed == []
    assert len(again.outcomes) > 10
    assert _snapshot(config.study_dir) == before


def test_the_command_line_run_skips_done_work(study):
    config, _ = study
    before = _snapshot(config.study_dir)
    result = CliRunner().invoke(
        app, ["run", str(QUICKSTART), "--quiet", "--output-dir", str(config.output_dir)]
    )
    # the CLI uses the config's own cluster profile: dashboard on 127.0.0.1:8787 or a free port
    assert result.exit_code == 0, result.output
    after = _snapshot(config.study_dir)
    resolved = StudyLayout(config.study_dir).config
    # study.yaml records the cluster settings this run used; no result was touched
    assert "127.0.0.1:8787" in resolved.read_text()
    assert {p: t for p, t in after.items() if p != resolved} == {
        p: t for p, t in before.items() if p != resolved
    }


def test_a_changed_config_is_refused_and_nothing_is_overwritten(study, quickstart_config):
    config, _ = study
    posterior = StudyLayout(config.study_dir).level("crude").posterior
    before = posterior.read_bytes()
    changed = quickstart_config(
        config.output_dir, inference={**config.inference.model_dump(), "hidden_features": 20}
    )
    with pytest.raises(StaleOutputError, match="made by a different config"):
        run_study(changed, progress=False)
    assert posterior.read_bytes() == before


def test_scores_of_older_scoring_code_show_stale_and_nothing_else_does(study, monkeypatch):
    config, _ = study
    from pipelines import stages
    from pipelines.state import stage_states

    assert {s.state for s in stage_states(config, StudyLayout(config.study_dir))} == {"done"}
    # as if the study had been scored before the scoring code changed (SCORING_VERSION raised)
    monkeypatch.setattr(stages, "SCORING_VERSION", stages.SCORING_VERSION + 1)
    monkeypatch.setattr(stages, "_ERROR_SETTINGS", {**stages._ERROR_SETTINGS, "scoring": -1})
    states = stage_states(config, StudyLayout(config.study_dir), counts=False)
    stale = {s.stage for s in states if s.state == "stale"}
    assert stale == {"score"}, [(s.stage, s.level, s.state) for s in states]
    assert {s.state for s in states if s.stage != "score"} == {"done"}
    assert len([s for s in states if s.stage == "score"]) == 4  # 3 levels and the ceiling
    emulator_error = stages._level_digests(config, config.ladder[0])["emulator-error"]
    monkeypatch.undo()
    assert emulator_error != stages._level_digests(config, config.ladder[0])["emulator-error"]


def test_sample_draws_a_levels_posterior_at_observations_the_user_brings(study, tmp_path):
    """`emustudy sample`: an observation file in, draws (every replicate) and a pair plot out;
    at an observation of the exact model they match the exact posterior; nothing is
    overwritten and an unknown level is refused naming the levels."""
    from inference.c2st import c2st
    from simulators import make_simulator

    config, _ = study
    simulator = make_simulator(config.simulator.name, **config.simulator.settings)
    theta = simulator.prior.sample(np.random.default_rng(3), 2)
    x = simulator.simulate(theta, np.array([7, 8], dtype=np.uint64))
    observed = tmp_path / "observed.csv"
    pd.DataFrame(x, columns=list(simulator.output_names)).to_csv(observed, index=False)
    args = ["sample", str(QUICKSTART), "--output-dir", str(config.output_dir)]
    args += ["--observation", str(observed), "--level", "ceiling", "-n", "500"]
    out = tmp_path / "draws.csv"
    result = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 0, result.output
    draws = pd.read_csv(out)
    assert len(draws) == 500 * 2 * config.inference.replicates
    assert list(draws.columns) == ["observation", "replicate", *simulator.prior.names]
    assert out.with_suffix(".png").stat().st_size > 10_000
    at_first = draws[(draws.observation == 0) & (draws.replicate == 0)]
    exact = simulator.sample_posterior(x[0], 500, np.random.default_rng(0))
    assert c2st(exact, at_first[list(simulator.prior.names)].to_numpy(), seed=0) < 0.65
    again = CliRunner().invoke(app, [*args, "--out", str(out)])
    assert again.exit_code != 0 and "exists" in str(again.exception)
    unknown = CliRunner().invoke(app, [*args[:-4], "--level", "nope", "-n", "5"])
    assert "its levels: full, reduced, crude, ceiling" in str(unknown.exception)
