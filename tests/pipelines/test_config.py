"""Study configs are validated on load, with errors that name the field and the fix."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import app
from pipelines.config import StudyConfig, digest, load_config
from simulators.errors import ConfigError

QUICKSTART = Path(__file__).parents[2] / "configs" / "quickstart.yaml"


def _write(tmp_path, mutate) -> Path:
    raw = yaml.safe_load(QUICKSTART.read_text())
    mutate(raw)
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_quickstart_is_valid():
    config = load_config(QUICKSTART)
    assert isinstance(config, StudyConfig)
    assert [level.name for level in config.ladder] == ["full", "reduced", "crude"]
    assert config.study_dir == Path("studies/quickstart")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: c["budgets"].update(tain=5), r"budgets\.tain: Extra inputs are not permitted"),
        (
            lambda c: c["budgets"].update(train=-5),
            r"budgets\.train: Input should be greater than 0 \(got -5\)",
        ),
        (
            lambda c: c["simulator"].update(name="lorenz_97"),
            r"unknown simulator 'lorenz_97'; known simulators: .*gaussian_linear",
        ),
        (lambda c: c.update(ladder=[]), r"ladder: .*at least 1 item"),
        (
            lambda c: c["ladder"][0].pop("simplification"),
            r"ladder\.0\.simplification: Field required",
        ),
        (
            lambda c: c["ladder"][1]["emulator"].update(train_samples=10**6),
            r"lower it or raise budgets\.train",
        ),
        (lambda c: c["ladder"][1].update(name="full"), r"level names must be unique"),
        (lambda c: c.update(name="my study"), r"name: .*only letters, digits"),
        (
            lambda c: c["inference"].update(density_estimator="flowmatching"),
            r"inference\.density_estimator",
        ),
    ],
)
def test_bad_configs_name_the_field(tmp_path, mutate, message):
    with pytest.raises(ConfigError, match=message):
        load_config(_write(tmp_path, mutate))


def test_a_simulator_without_exact_posterior_gets_a_reference_ensemble(tmp_path, monkeypatch):
    import simulators.registry
    from simulators import GaussianLinear, Simulator

    class NoExactPosterior(Simulator):
        name = "no_exact"
        prior, output_names = GaussianLinear(dim=2).prior, ("a", "b")
        settings = {}

        def simulate(self, theta, seeds):
            return theta

    monkeypatch.setitem(simulators.registry._REGISTERED, "no_exact", NoExactPosterior)
    path = _write(tmp_path, lambda c: c.update(simulator={"name": "no_exact"}))
    config = load_config(path)
    # scored against a simulation reference on a campaign of its own, 10x the training budget
    assert config.reference_kind == "simulation" and config.reference.members >= 3
    assert config.reference_budget == 10 * config.budgets.train
    with pytest.raises(ConfigError, match="moved to the `reference:` section"):
        load_config(path, inference={"reference_members": 3})
    with pytest.raises(ConfigError, match="no exact posterior"):
        load_config(path, reference={"kind": "exact"})
    with pytest.raises(ConfigError, match="declares no log_likelihood"):
        load_config(path, reference={"kind": "likelihood"})
    with pytest.raises(ConfigError, match="needs observations from a file"):
        load_config(path, reference={"kind": "samples", "samples": str(path)})


def test_python_tags_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"name: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    assert not marker.exists()


def test_digest_is_stable_and_sensitive():
    config = load_config(QUICKSTART)
    assert digest(config.inference) == digest(load_config(QUICKSTART).inference)
    changed = config.inference.model_copy(update={"hidden_features": 51})
    assert digest(changed) != digest(config.inference)


def test_validate_command(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["validate", str(QUICKSTART)])
    assert ok.exit_code == 0, ok.output
    assert "is valid" in ok.output and "crude" in ok.output
    bad = runner.invoke(
        app, ["validate", str(_write(tmp_path, lambda c: c["budgets"].update(tain=5)))]
    )
    assert bad.exit_code != 0
    assert isinstance(bad.exception, ConfigError)


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[2] / "configs").glob("*.yaml")), ids=lambda p: p.name
)
def test_every_shipped_config_is_valid(path):
    config = load_config(path)
    assert config.name == path.stem
    # a study has a ladder to compare; a misspecification sweep compares degrees instead
    assert len(config.ladder) >= 3 or len(config.misspecification.degrees) >= 5
