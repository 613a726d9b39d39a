"""``finetune`` levels: a level's posterior fine-tuned on k true-simulator runs, per k.

A ladder entry ::

    - finetune:
        base: crude                  # a level of the ladder (its posterior is the start)
        true_runs: [0, 100, 300, 1000]
        name: crude-ft               # prefix of the level names (default: <base>-ft)

expands at load (:func:`pull_finetunes`) into one :class:`~emulators.fidelity.FinetuneLevel`
per count, named ``crude-ft0``, ``crude-ft100``, ...; each takes the base level's simplification.
Such a level has no emulator of its own: its ``infer`` stage loads each replicate posterior of
the base level and fine-tunes it on the first ``k`` runs of the study's true-simulator training
store (:func:`inference.finetune.finetune_npe`), so it needs the base's ``infer`` done first; its
``score`` stage is every other level's. The report plots the quality score against ``k`` for
each base, with the ceiling (NPE on all ``budgets.train`` true runs) alongside
(:func:`finetune_section`).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from emulators.fidelity import FinetuneLevel
from inference.settings import NPESettings
from simulators.errors import EmustudyError
from simulators.prior import Prior

__all__ = [
    "FINETUNE_VERSION",
    "check_finetunes",
    "finetune_curves",
    "finetune_owners",
    "finetune_replicates",
    "finetune_section",
    "finetune_settings",
    "is_finetune",
    "pull_finetunes",
    "require_base_posteriors",
]

FINETUNE_VERSION = 1
"""Part of a finetune level's digest: bump when the fine-tuning changes."""
_ENTRY_KEYS = {
    "base",
    "true_runs",
    "name",
    "description",
    "learning_rate",
    "batch_size",
    "patience",
}


def pull_finetunes(raw: Any) -> Any:
    """Expand a raw config's ``- finetune: {...}`` ladder entries into levels (in place).

    Run after sweeps are expanded, so a base may be a sweep's level.

    Raises
    ------
    ValueError
        Naming the entry (``ladder.<i>.finetune``), the problem and the fix.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("ladder"), list | tuple):
        return raw
    named = {e["name"]: e for e in raw["ladder"] if isinstance(e, dict) and "name" in e}
    ladder = []
    for index, entry in enumerate(raw["ladder"]):
        if not (isinstance(entry, dict) and "finetune" in entry):
            ladder.append(entry)
            continue
        where = f"ladder.{index}.finetune"
        spec = entry["finetune"]
        if len(entry) != 1 or not isinstance(spec, dict):
            raise ValueError(f"{where}: write `- finetune: {{base: NAME, true_runs: [...]}}`")
        unknown = sorted(set(spec) - _ENTRY_KEYS)
        if unknown or "base" not in spec or "true_runs" not in spec:
            raise ValueError(
                f"{where}: give `base` and `true_runs`"
                + (f"; unknown keys {unknown} (allowed: {sorted(_ENTRY_KEYS)})" if unknown else "")
            )
        base = named.get(spec["base"])
        if base is None:
            raise ValueError(
                f"{where}: base {spec['base']!r} is not a level of the ladder; use one of "
                f"{sorted(named)}"
            )
        counts = spec["true_runs"]
        if not isinstance(counts, list) or not counts or len(set(counts)) != len(counts):
            raise ValueError(f"{where}: true_runs must be a list of distinct counts, got {counts}")
        prefix = spec.get("name", f"{spec['base']}-ft")
        options = {k: spec[k] for k in ("learning_rate", "batch_size", "patience") if k in spec}
        for k in counts:
            text = spec.get("description", f"{spec['base']} fine-tuned on {k} true runs")
            ladder.append(
                {
                    "kind": "finetune",
                    "name": f"{prefix}{k}",
                    "simplification": base.get("simplification"),
                    "description": text,
                    "base": spec["base"],
                    "true_runs": k,
                    **options,
                }
            )
    return {**raw, "ladder": ladder}


def is_finetune(level: object) -> bool:
    """Whether ``level`` is a finetune level (it has no emulator of its own)."""
    return isinstance(level, FinetuneLevel)


def finetune_owners(config: Any) -> dict[str, str]:
    """Each finetune level's name, to the name of the level it fine-tunes."""
    return {lv.name: lv.base for lv in config.ladder if isinstance(lv, FinetuneLevel)}


def check_finetunes(ladder: tuple[Any, ...], train_budget: int, methods: tuple[str, ...]) -> None:
    """Refuse finetune levels a study cannot run.

    Raises
    ------
    ValueError
        When ``true_runs`` exceeds ``budgets.train`` or lies in ``1..9``, or NPE is not among
        the inference methods.
    """
    from inference.finetune import MIN_FINETUNE_PAIRS  # torch: only where a ladder fine-tunes

    for level in ladder:
        if not isinstance(level, FinetuneLevel):
            continue
        k = level.true_runs
        if k > train_budget:
            raise ValueError(
                f"finetune level {level.name!r} asks for {k} true runs but budgets.train is "
                f"{train_budget}; lower true_runs or raise budgets.train"
            )
        if 0 < k < MIN_FINETUNE_PAIRS:
            raise ValueError(
                f"finetune level {level.name!r}: {k} true runs leave none to stop early on; "
                f"use 0 or at least {MIN_FINETUNE_PAIRS}"
            )
        if "npe" not in methods:
            raise ValueError(
                f"finetune level {level.name!r} fine-tunes an NPE posterior but "
                f"inference.methods is {list(methods)}; add npe"
            )


def require_base_posteriors(
    config: Any, layout: Any, levels: list[Any], digests: Callable[..., dict[str, str]]
) -> None:
    """Refuse to fine-tune before the base level's posteriors exist for this config.

    ``digests(config, level)`` is :func:`pipelines.stages._level_digests`.

    Raises
    ------
    EmustudyError
        Naming the base level and the command that trains its posteriors.
    """
    from pipelines.manifest import Manifest

    for level in levels:
        if not isinstance(level, FinetuneLevel):
            continue
        base = next(other for other in config.ladder if other.name == level.base)
        paths = layout.level(base.name)
        outputs = [paths.replicate_posterior(i) for i in range(config.inference.replicates)]
        if not Manifest(paths.manifest).is_done("infer", digests(config, base)["infer"], outputs):
            raise EmustudyError(
                f"cannot run 'infer' for level {level.name!r}: it fine-tunes the posteriors of "
                f"level {base.name!r}, which are not trained for this config; run `emustudy "
                f"infer CONFIG --level {base.name}` first (or both levels together)"
            )


def finetune_settings(network: NPESettings, level: FinetuneLevel) -> NPESettings:
    """The study's NPE training settings with the level's fine-tuning options."""
    return network.model_copy(
        update={
            "learning_rate": level.learning_rate or network.learning_rate,
            "training_batch_size": level.batch_size,
            "stop_after_epochs": level.patience,
        }
    )


def finetune_replicates(
    settings: NPESettings,
    prior: Prior,
    bases: list[Path],
    train_store: Path,
    true_runs: int,
    outs: list[Path],
    seed: int,
) -> None:
    """Fine-tune each base replicate posterior on the first ``true_runs`` true pairs (a Dask task).

    ``bases[i]`` is fine-tuned into ``outs[i]`` with seed ``child_seed(seed, i)``; with
    ``true_runs = 0`` the base files are copied as they are.
    """
    from inference.finetune import finetune_npe
    from inference.methods import load_posterior
    from inference.seeds import child_seed
    from simulators.store import load_pairs

    theta, x, _ = load_pairs(train_store, limit=true_runs) if true_runs else (None, None, None)
    for index, (base, out) in enumerate(zip(bases, outs, strict=True)):
        out.parent.mkdir(parents=True, exist_ok=True)
        if true_runs == 0:
            shutil.copyfile(base, out)
            continue
        posterior = load_posterior(base, prior)
        tuned = finetune_npe(posterior, theta, x, settings, seed=child_seed(seed, index))  # type: ignore[arg-type]
        tuned.save(out)


def finetune_curves(ladder: tuple[Any, ...], table: pd.DataFrame, score: str) -> dict[str, Any]:
    """Per base level: its finetune levels' ``k`` and the mean, lowest and highest ``score``.

    ``table`` is the report's ``scores.csv`` frame (``level``, ``method``, ``<column>_mean``,
    ``_lo``, ``_hi``, the column of the score table's ``score``). Returns
    ``{base: DataFrame(k, mean, lo, hi)}``, sorted by ``k``.
    """
    from inference.score_table import score_spec

    column, rows = score_spec(score).csv_column, {}
    npe = table[table["method"] == "npe"].set_index("level")
    for level in ladder:
        if isinstance(level, FinetuneLevel) and level.name in npe.index:
            found = npe.loc[level.name]
            rows.setdefault(level.base, []).append(
                {
                    "k": float(level.true_runs),
                    **{p: float(found.get(f"{column}_{p}", np.nan)) for p in ("mean", "lo", "hi")},
                }
            )
    return {base: pd.DataFrame(r).sort_values("k") for base, r in rows.items()}


class _Page(Protocol):
    def heading(self, text: str, note: str = "") -> None: ...

    def figure(self, name: str, png: bytes, caption: str) -> None: ...


def finetune_section(
    page: _Page, curves: dict[str, Any], table: pd.DataFrame, score: str
) -> list[str]:
    """The report's quality-against-k figure per base, with the ceiling, and a sentence each."""
    from inference.score_table import score_spec
    from pipelines.figures import finetune_curve

    spec = score_spec(score)
    ceiling_rows = table[(table["level"] == "ceiling") & (table["method"] == "npe")]
    column = f"{spec.csv_column}_mean"
    ceiling = float(ceiling_rows[column].iloc[0]) if len(ceiling_rows) else float("nan")
    sentences = []
    for base, frame in curves.items():
        page.heading(
            f"Fine-tuning {base!r} on true runs: {score} against k",
            "The posterior trained on the level's emulated data, then trained further on the "
            "first k true-simulator runs (multi-fidelity NPE); the ceiling is NPE on all the "
            "true runs. Means over replicates, with their range.",
        )
        page.figure(f"finetune_{base}", finetune_curve(frame, ceiling, spec.label), "")
        parts = ", ".join(f"{int(r.k)}: {r.mean:.3f}" for r in frame.itertuples())
        sentences.append(
            f"Fine-tuning {base!r} on k true runs, {score} by k: {parts} (ceiling {ceiling:.3f})."
        )
    return sentences
