"""Where a study stands: each stage of each level is done, stale, partial or missing.

Read from the study folder alone (manifests and store ledgers), so ``emustudy status``, the stage
commands' prerequisite checks and ``--replace-stale`` agree on what is done.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import yaml

from emulators.fidelity import FidelityLevel
from pipelines import stages
from pipelines.config import StudyConfig
from pipelines.finetune import is_finetune
from pipelines.layout import CEILING, StudyLayout
from pipelines.manifest import Manifest
from pipelines.units import Unit, units
from simulators.errors import EmustudyError, StaleOutputError, StoreError
from simulators.store import Status, open_store

__all__ = [
    "LEVEL_STAGES",
    "CEILING_STAGES",
    "StageState",
    "level_names",
    "resolve_levels",
    "stage_states",
    "require_done",
    "move_stale_aside",
]

LEVEL_STAGES = ("train-emulator", "emulate", "infer", "score")
CEILING_STAGES = ("infer", "score")
# What each stage needs done first, for the same level (simulate is study-wide).
_NEEDS = {
    "train-emulator": None,
    "emulate": "train-emulator",
    "infer": "emulate",
    "score": "infer",
}

State = Literal["done", "damaged", "stale", "partial", "missing"]


@dataclass(frozen=True)
class StageState:
    """One stage of one level (``level`` None for study-wide stages) as its files show it;
    ``damage`` names the damaged chunk files of its store when ``state`` is damaged."""

    stage: str
    level: str | None
    state: State
    counts: dict[str, int] = field(default_factory=dict)
    store: Path | None = None
    damage: list[str] = field(default_factory=list)


def level_names(config: StudyConfig) -> list[str]:
    """Ladder level names in order, then the ceiling."""
    return [level.name for level in config.ladder] + [CEILING]


def resolve_levels(config: StudyConfig, selected: list[str] | None) -> list[FidelityLevel | None]:
    """Levels named (or numbered from 0 in ladder order; ``ceiling`` is last) on the command line.

    Raises
    ------
    EmustudyError
        For a name or number that is not on the ladder, listing the valid ones.
    """
    names = level_names(config)
    if not selected:
        return [*config.ladder, None]
    chosen: list[FidelityLevel | None] = []
    for item in selected:
        name = names[int(item)] if item.isdigit() and int(item) < len(names) else item
        if name not in names:
            valid = ", ".join(f"{i}={n}" for i, n in enumerate(names))
            raise EmustudyError(
                f"--level {item!r} is not a level of study {config.name!r}: {valid}"
            )
        level = None if name == CEILING else config.ladder[names.index(name)]
        if level not in chosen:
            chosen.append(level)
    return chosen


def _counts(store: Path) -> dict[str, int]:
    try:
        status = open_store(store)["status"].values
    except (StoreError, OSError, KeyError, ValueError):
        return {}
    return {s.name.lower(): int((status == s).sum()) for s in Status}


def _outputs(layout: StudyLayout, stage: str, name: str, degrees: bool = False) -> list[Path]:
    """What ``stage`` writes for unit ``name`` (the score stage: scores at every degree too,
    when the study sweeps misspecification)."""
    paths = layout.level(name)
    return {
        "train-emulator": [paths.emulator],
        "emulate": [paths.emulated],
        "infer": [paths.posterior],
        "score": [paths.scores] + ([paths.degree_scores] if degrees else []),
    }[stage]


def stage_states(
    config: StudyConfig, layout: StudyLayout, *, counts: bool = True
) -> list[StageState]:
    """Every stage of the study, in pipeline order, as the study folder shows it.

    ``counts=False`` skips reading the stores' ledgers (prerequisite checks need only states).
    """
    tally = _counts if counts else lambda store: {}
    states = []
    simulations = Manifest(layout.manifest)
    for role in stages.simulation_roles(config):
        store = layout.simulations(role)
        wanted = stages.simulation_key(config, role)
        state = simulations.state(f"simulate-{role}", wanted, [store])
        damage = Manifest.damage([store]) if state == "damaged" else []
        states.append(StageState(f"simulate-{role}", None, state, tally(store), store, damage))
    for level in [*config.ladder, None]:
        own = level is not None and not is_finetune(level)  # has an emulator of its own
        for stage in LEVEL_STAGES if own else CEILING_STAGES:
            chosen = units(config, [level]) if stage in ("infer", "score") else [Unit(level, "npe")]
            for unit in chosen:
                name = unit.name
                wanted = stages._level_digests(config, level, unit.method)
                outputs = _outputs(layout, stage, name, config.misspecification is not None)
                state = Manifest(layout.level(name).manifest).state(stage, wanted[stage], outputs)
                store = outputs[0] if stage == "emulate" else None
                ledger = tally(store) if store is not None else {}
                damage = Manifest.damage(outputs) if state == "damaged" else []
                states.append(StageState(stage, name, state, ledger, store, damage))
    return states


def require_done(config: StudyConfig, layout: StudyLayout, stage: str, name: str | None) -> None:
    """Refuse to run ``stage`` for level ``name`` before what it reads is done for this config.

    Raises
    ------
    EmustudyError
        Naming the missing stage and the command that makes it.
    """
    table = {(s.stage, s.level): s for s in stage_states(config, layout, counts=False)}
    if stage == "simulate":
        _refuse_another_study(config, layout, list(table.values()))
    needed: list[tuple[str, str | None]] = []
    if stage != "simulate":
        needed += [(f"simulate-{role}", None) for role in stages.simulation_roles(config)]
    if stage == "report":
        needed += [("score", s.level) for s in table.values() if s.stage == "score"]
    elif name is not None:
        level = name.split("/", 1)[0]
        before = "simulate" if level == CEILING and stage == "infer" else _NEEDS.get(stage)
        base = _finetune_base(config, level)
        if base is not None and stage == "infer":  # the base's infer runs first in the stage
            needed.append(("emulate", base))
        elif before and before != "simulate":
            needed.append((before, name if before in ("infer", "score") else level))
    for key in needed:
        found = table[key]
        if found.state != "done":
            command = key[0].split("-")[0] if key[0].startswith("simulate") else key[0]
            level = f" --level {key[1]}" if key[1] is not None else ""
            raise EmustudyError(
                f"cannot run {stage!r}{f' for level {name!r}' if name else ''}: "
                f"{key[0]}{f' of level {key[1]!r}' if key[1] else ''} is {found.state} for this "
                f"config; run `emustudy {command} CONFIG{level}` first"
                + (
                    " (with --replace-stale to set the old outputs aside)"
                    if found.state == "stale"
                    else ""
                )
            )


def _finetune_base(config: StudyConfig, name: str) -> str | None:
    level = next((lv for lv in config.ladder if lv.name == name), None)
    return level.base if is_finetune(level) else None  # type: ignore[union-attr]


def _refuse_another_study(
    config: StudyConfig, layout: StudyLayout, states: list[StageState]
) -> None:
    """Refuse, before anything starts, to simulate into a folder another config's runs fill."""
    stale = [s for s in states if s.stage.startswith("simulate-") and s.state == "stale"]
    if not stale:
        return
    made_by = ""
    try:
        recorded = yaml.safe_load(layout.config.read_text())
        simulator = recorded["simulator"]
        made_by = (
            f" (its study.yaml: study {recorded['name']!r}, simulator {simulator['name']!r} "
            f"{simulator.get('settings', {})}, seed {recorded.get('seed')})"
        )
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        pass
    stores = ", ".join(str(s.store) for s in stale)
    raise StaleOutputError(
        f"{layout.root} holds another study's data{made_by}: {stores} were simulated with a "
        f"different simulator, seed or budgets than study {config.name!r} asks for. Nothing "
        "was changed. Give this study another `name` or `output_dir`, restore the config that "
        f"made them, or run again with --replace-stale to move them into {layout.root / 'stale'} "
        "and simulate afresh"
    )


def move_stale_aside(
    config: StudyConfig, layout: StudyLayout, names: list[str | None]
) -> list[Path]:
    """Move outputs a different config made out of the way, into ``<study>/stale/``.

    ``names`` holds level names, or None for the true-simulator stores. Nothing is deleted: each
    stale folder moves whole to ``stale/<name>-<UTC time>/``.

    Returns
    -------
    list of Path
        Where stale folders went.
    """
    states = stage_states(config, layout, counts=False)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    moved = []
    for name in names:
        source = layout.root / "simulations" if name is None else layout.level(name).root
        mine = [s for s in states if s.level == name]
        if source.exists() and any(s.state == "stale" for s in mine):
            target = layout.root / "stale" / f"{source.name}-{stamp}"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(source, target)
            moved.append(target)
    return moved
