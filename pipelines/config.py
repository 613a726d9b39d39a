"""The study config: one YAML file, validated on load into frozen, typed settings."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from yaml.constructor import ConstructorError

from cluster.settings import CampaignSettings
from emulators.fidelity import MIN_ROWS, FidelityLevel, Level, check_folder_name
from emulators.ladder import check_ladder
from inference.methods import get_method
from inference.observations import ObservationModel
from inference.score_table import quality_scores
from inference.scoring_context import SEED_PAIRS
from inference.settings import MethodSettings, NPESettings
from pipelines.config_errors import describe_errors
from pipelines.degrees import MisspecificationSweep, check_sweep
from pipelines.sweeps import Sweep, check_sweeps, pull_sweeps
from pipelines.truth_settings import (
    ObservationFile,
    ReferenceKind,
    ReferenceSettings,
    check_reference_samples,
    read_observation_file,
    resolve_reference,
)
from simulators.base import Simulator
from simulators.errors import ConfigError
from simulators.registry import available_simulators, make_simulator, unknown_simulator_message

__all__ = [
    "SimulatorConfig",
    "Budgets",
    "ScoreSettings",
    "ScoreTasks",
    "InferenceSettings",
    "ClusterSettings",
    "ReportSettings",
    "StudyConfig",
    "load_config",
    "digest",
]


MIN_TEST_PAIRS = 20
"""Fewest finite held-out pairs a posterior is scored on (:func:`inference.score_posterior`)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SimulatorConfig(_Frozen):
    """Which registered simulator the study treats as the truth, and its settings."""

    name: str
    settings: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        known = available_simulators()
        if name not in known:
            raise ValueError(unknown_simulator_message(name, known))
        return name


class Budgets(_Frozen):
    """Numbers of simulator and emulator runs."""

    train: int = Field(
        gt=0, description="true-simulator runs for emulators and the ceiling posterior"
    )
    test: int = Field(
        gt=0, description="held-out true-simulator pairs for NLTP, SBC and emulator error"
    )
    observations: int | None = Field(
        None,
        gt=0,
        description="observations simulated at prior draws, where posteriors are compared "
        "(or give `observations: FILE` at the top level)",
    )
    emulated: int | None = Field(None, gt=0, description="emulator runs per level; default: train")
    chunk_size: int = Field(500, gt=0, description="rows per store chunk = per Dask task")

    @property
    def emulated_runs(self) -> int:
        """Emulator runs each level's posterior is trained on."""
        return self.emulated or self.train


class ScoreTasks(_Frozen):
    """How the score stage splits each unit into Dask tasks; the scores do not depend on it
    (seeds follow observations and test pairs, not tasks), so it is not part of any digest."""

    pairs: int = Field(
        100,
        gt=0,
        multiple_of=SEED_PAIRS,
        description=f"held-out test pairs per task (a multiple of {SEED_PAIRS}, the pairs "
        "drawn with one seed); a task holds about sbc_samples x pairs x (24 p + 12 d) bytes",
    )
    observations: int = Field(
        4,
        gt=0,
        description="observations per task (their C2ST, MMD and predictive check); a task "
        "holds about 16 x posterior_samples x observations x p bytes",
    )


class ScoreSettings(_Frozen):
    """How posteriors are scored against the truth."""

    posterior_samples: int = Field(1000, gt=0, description="samples per observation for C2ST")
    sbc_samples: int = Field(200, gt=0, description="posterior samples per test pair for SBC ranks")
    ppc_samples: int = Field(
        100, gt=0, description="posterior draws per observation run through the true simulator"
    )
    lc2st_null: int = Field(30, gt=0, description="label-shuffled classifiers per L-C2ST null")
    misspecification_alpha: float = Field(
        0.05, gt=0, lt=1, description="p-value below which an observation is flagged"
    )
    mcmc_test_pairs: int = Field(
        100,
        ge=20,
        description="held-out pairs scored (SBC, TARP, coverage) for methods sampled by MCMC",
    )
    observation_model: ObservationModel = Field(
        default_factory=ObservationModel,
        description="how observations differ from the simulator (perfect, noise, contamination)",
    )
    tasks: ScoreTasks = Field(
        default_factory=ScoreTasks,
        description="test pairs and observations per Dask task of the score stage",
    )

    def result_settings(self) -> dict[str, Any]:
        """The settings the scores depend on (all but ``tasks``), for digests."""
        return self.model_dump(mode="json", exclude={"tasks"})


class InferenceSettings(MethodSettings):
    """Which inference methods, their network/MCMC settings, replicates and the reference.

    ``method: nle`` is short for ``methods: [nle]``. Every method runs on every level it applies
    to (``emulator_likelihood`` needs a level with a density, and at the ceiling a simulator
    with ``log_likelihood``); the report shows them side by side.
    """

    methods: tuple[str, ...] = Field(
        ("npe",), min_length=1, description="registered inference methods (npe, nle, nre, ...)"
    )
    replicates: int = Field(3, gt=0, description="posteriors per level, one per training seed")

    @model_validator(mode="before")
    @classmethod
    def _one_method(cls, raw: Any) -> Any:
        moved = {"reference_members": "members", "reference_budget": "budget"}
        for old, new in moved.items():
            if isinstance(raw, dict) and old in raw:
                raise ValueError(
                    f"inference.{old} moved to the `reference:` section: write `reference: "
                    f"{{{new}: {raw[old]}}}` (the reference now trains on a campaign of its own, "
                    "default 10 x budgets.train)"
                )
        if isinstance(raw, dict) and "method" in raw:
            if "methods" in raw:
                raise ValueError("give `method: NAME` or `methods: [NAMES]`, not both")
            raw = {key: value for key, value in raw.items() if key != "method"} | {
                "methods": [raw["method"]]
            }
        return raw

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(methods)) != len(methods):
            raise ValueError(f"inference methods must be unique, got {list(methods)}")
        for name in methods:
            try:
                get_method(name)
            except ConfigError as err:
                raise ValueError(str(err)) from err
        return methods

    @model_validator(mode="after")
    def _valid_options(self) -> InferenceSettings:
        unused = sorted(set(self.options) - set(self.methods))
        if unused:
            raise ValueError(
                f"options for {unused} but methods are {list(self.methods)}; add the method to "
                "`methods` or remove its options"
            )
        for name in self.methods:
            get_method(name).options(self.method_settings)  # raises on bad options
        return self

    @property
    def npe(self) -> NPESettings:
        """The settings of one NPE training."""
        return self.network

    @property
    def method_settings(self) -> MethodSettings:
        """What a method's training reads (without replicates, methods and the reference)."""
        return MethodSettings(**self.model_dump(include=set(MethodSettings.model_fields)))


class ReportSettings(_Frozen):
    """What the report calls good enough: the cost-quality frontier marks the cheapest level
    whose ``quality_score`` meets ``quality_target``."""

    quality_score: str = Field(
        "c2st",
        description="a summarised score of the score table: c2st, mmd, nltp, ppc_distance "
        "(lower is better), sbc_pvalue (higher), ...",
    )
    quality_target: float = Field(0.6, description="e.g. C2ST at most 0.6")

    @field_validator("quality_score")
    @classmethod
    def _known_score(cls, name: str) -> str:
        allowed = tuple(quality_scores())
        if name not in allowed:
            raise ValueError(f"unknown quality_score {name!r}; choose one of {', '.join(allowed)}")
        return name


class ClusterSettings(_Frozen):
    """The Dask cluster a study runs on."""

    profile: str = "local"
    profiles_file: Path | None = None
    overrides: dict[str, Any] = Field(default_factory=dict)


class StudyConfig(_Frozen):
    """A whole study: the truth, the budgets, the fidelity ladder, inference, scores, cluster."""

    name: str
    seed: int = Field(0, ge=0)
    output_dir: Path = Path("studies")
    simulator: SimulatorConfig
    budgets: Budgets
    ladder: tuple[Level, ...] = Field(min_length=1)
    inference: InferenceSettings = InferenceSettings()
    scores: ScoreSettings = ScoreSettings()
    cluster: ClusterSettings = ClusterSettings()
    campaign: CampaignSettings = CampaignSettings()
    report: ReportSettings = ReportSettings()
    reference: ReferenceSettings = ReferenceSettings()
    observations: ObservationFile | None = Field(
        None, description="observed outputs from a file (a count goes to budgets.observations)"
    )
    sweeps: tuple[Sweep, ...] = Field(
        (), description="filled from the ladder's `- sweep: {...}` entries (pipelines/sweeps.py)"
    )
    misspecification: MisspecificationSweep | None = Field(
        None,
        description="a knob and its degrees: every unit is scored at observations made at each "
        "degree (pipelines/degrees.py)",
    )

    @model_validator(mode="before")
    @classmethod
    def _expand_sweeps(cls, raw: Any) -> Any:
        raw = pull_sweeps(raw)  # `- sweep: {...}` entries become levels before validation
        from pipelines.finetune import pull_finetunes

        raw = pull_finetunes(raw)  # `- finetune: {...}` entries too, after the sweeps
        observations = raw.get("observations") if isinstance(raw, dict) else None
        if isinstance(observations, int) and not isinstance(observations, bool):
            budgets = dict(raw.get("budgets") or {})
            if budgets.get("observations", observations) != observations:
                raise ValueError(
                    f"observations: {observations} and budgets.observations: "
                    f"{budgets['observations']} disagree; give the count once"
                )
            raw = {**raw, "budgets": {**budgets, "observations": observations}}
            raw.pop("observations")
        elif isinstance(observations, (str, Path)):
            raw = {**raw, "observations": {"file": observations}}
        return raw

    @field_validator("name")
    @classmethod
    def _folder_safe(cls, name: str) -> str:
        return check_folder_name(name, "study")

    @model_validator(mode="after")
    def _consistent(self) -> StudyConfig:
        names = [level.name for level in self.ladder]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"ladder level names must be unique, repeated: {duplicates}")
        check_sweeps(self.sweeps, names)
        from pipelines.finetune import check_finetunes

        check_finetunes(self.ladder, self.budgets.train, self.inference.methods)
        if "ceiling" in names:
            raise ValueError(
                "'ceiling' is reserved for the posterior trained on true-simulator data"
            )
        if self.budgets.test < MIN_TEST_PAIRS:
            raise ValueError(
                f"budgets.test={self.budgets.test} is below {MIN_TEST_PAIRS}, the fewest held-out "
                f"pairs scoring uses; raise budgets.test to at least {MIN_TEST_PAIRS}"
            )
        for level in self.ladder:
            if not isinstance(level, FidelityLevel):
                continue
            wanted = level.emulator.train_samples
            if (wanted or self.budgets.train) < MIN_ROWS:
                raise ValueError(
                    f"level {level.name!r} would train its emulator on "
                    f"{wanted or self.budgets.train} runs, fewer than the {MIN_ROWS} an emulator "
                    f"needs; raise emulator.train_samples (or budgets.train) to at least {MIN_ROWS}"
                )
            if wanted is not None and wanted > self.budgets.train:
                raise ValueError(
                    f"level {level.name!r} asks for emulator.train_samples={wanted} but "
                    f"budgets.train is {self.budgets.train}; lower it or raise budgets.train"
                )
        try:
            simulator = make_simulator(self.simulator.name, **self.simulator.settings)
        except ConfigError as err:
            raise ValueError(str(err)) from err
        try:
            check_ladder(self.ladder, simulator)
        except ConfigError as err:
            raise ValueError(str(err)) from err
        self._check_truth(simulator)
        if self.misspecification is not None:
            try:
                check_sweep(
                    self.misspecification,
                    simulator,
                    self.scores.observation_model,
                    self.inference.methods,
                )
            except ConfigError as err:
                raise ValueError(str(err)) from err
        return self

    def _check_truth(self, simulator: Simulator) -> None:
        if (self.budgets.observations is None) == (self.observations is None):
            raise ValueError(
                "give the observations once: a count (`budgets.observations: 10`, simulated at "
                "prior draws) or a file (`observations: data/observed.csv`)"
                + ("" if self.observations is None else ", not both")
            )
        try:
            kind = resolve_reference(self.reference, simulator)
            if self.observations is not None:
                n_obs = len(read_observation_file(self.observations, simulator).x)
            if kind == "samples":
                if self.observations is None:
                    raise ConfigError(
                        "reference.kind: samples needs observations from a file (`observations: "
                        "FILE`): the draws must be for known observations, in the file's order"
                    )
                check_reference_samples(self.reference, simulator, n_obs)
        except ConfigError as err:
            raise ValueError(str(err)) from err

    @property
    def reference_kind(self) -> ReferenceKind:
        """The reference posterior's kind (``auto`` resolved for this study's simulator)."""
        return resolve_reference(self.reference, make_simulator(**self._simulator_args))

    @property
    def _simulator_args(self) -> dict[str, Any]:
        return {"name": self.simulator.name, **self.simulator.settings}

    @property
    def n_observations(self) -> int:
        """Observations scored: the count, or the rows of the observation file."""
        if self.observations is None:
            return int(self.budgets.observations or 0)
        simulator = make_simulator(**self._simulator_args)
        return len(read_observation_file(self.observations, simulator).x)

    @property
    def reference_budget(self) -> int:
        """Runs of the simulation reference's own campaign (0 for other references)."""
        if self.reference_kind != "simulation":
            return 0
        return self.reference.resolved_budget(self.budgets.train)

    @property
    def study_dir(self) -> Path:
        """The study folder: ``output_dir / name``."""
        return self.output_dir / self.name


def digest(*parts: Any) -> str:
    """A short, stable hash of JSON-serialisable parts (pydantic models allowed)."""
    plain = [p.model_dump(mode="json") if isinstance(p, BaseModel) else p for p in parts]
    text = json.dumps(plain, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_config(path: Path, *, force: bool = False, **overrides: Any) -> StudyConfig:
    """Read and validate a study config, and check that its budgets fit this machine.

    YAML is parsed with ``yaml.safe_load``: tags that construct Python objects are refused.
    ``force`` skips the budget check (:func:`pipelines.budgets.check_budgets`).

    Raises
    ------
    ConfigError
        Naming every invalid field, the value received and what is allowed; or the budget that
        needs more memory or disk than this machine has, with the estimate.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as err:
        raise ConfigError(
            f"cannot read study config {path}: {err}; check the path and that you may read it"
        ) from err
    except yaml.YAMLError as err:
        raise ConfigError(_yaml_problem(path, err)) from err
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{path} must hold a mapping of settings (`name: ...`, `simulator: ...`, ...), got "
            f"{type(raw).__name__}; see configs/quickstart.yaml for a commented example"
        )
    try:
        config = StudyConfig.model_validate({**raw, **overrides})
    except ValidationError as err:
        raise ConfigError(
            f"{path} is not a valid study config:\n{describe_errors(err, StudyConfig)}"
        ) from err
    from pipelines.budgets import check_budgets  # it reads the config's simulator

    check_budgets(config, force=force)
    return config


def _yaml_problem(path: Path, err: yaml.YAMLError) -> str:
    problem = str(getattr(err, "problem", "") or "")
    if isinstance(err, ConstructorError) and "python/" in problem:
        mark = err.problem_mark
        where = f"line {mark.line + 1}" if mark is not None else "a value"
        return (
            f"{path} is not valid YAML for a study config: {where} has a Python tag "
            f"({problem.split('tag ')[-1]}), which would run Python code and is refused. Remove "
            "the tag and write a plain value (numbers, text, lists, mappings); simulators are "
            "chosen by name, `simulator: {name: ...}`"
        )
    return f"{path} is not valid YAML (only plain YAML is accepted): {err}; fix the syntax there"
