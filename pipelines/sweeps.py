"""Ladders generated from one knob: a ``sweep`` ladder entry expands into named levels.

A study's ladder may hold, next to hand-written levels, entries of the form::

    - sweep:
        name: data                    # the levels are named data-100, data-200, ...
        base: {emulator: {family: maf, transforms: 3, hidden_features: 64}}
        knob: emulator.train_samples
        range: {start: 100, stop: 4000, num: 8, log: true}   # or values: [100, 200, ...]

:func:`expand_sweep` turns it into one level per value: the ``base`` level spec (any level kind,
without ``name`` and ``simplification``) with the knob set to the value, named
``<name>-<value>`` and with a numeric ``simplification`` derived from the knob.

Knobs and how ``simplification`` is derived (larger is always more simplified, i.e. cheaper or
cruder, so sweeps and hand-written levels share one x axis):

* ``emulator.train_samples``, ``emulator.hidden_features``, ``emulator.hidden_layers``,
  ``emulator.transforms``, ``emulator.components``, ``emulator.max_epochs`` (``emulator``
  levels; positive whole numbers; fewer is simpler): ``log10(largest value / value)``, the
  number of decades below the sweep's largest value (0 there);
* ``bias``, ``extra_noise_std`` (``perturbed`` levels; scalars in units of ``x``; a larger
  perturbation is simpler): ``|value|``, the size of the perturbation (0 is the base emulator);
* ``simulator.settings.<key>`` (``reduced_simulator`` levels, e.g. ``simulator.settings.dt``):
  the direction is the user's to state with ``simpler: larger`` (a time step, a tolerance) or
  ``simpler: smaller`` (a number of particles); ``log10`` of the ratio to the least simplified
  value when all values are positive, else the difference to it.

``simplification_offset`` is added to every level of a sweep, to place several sweeps side by
side in one study. :class:`pipelines.config.StudyConfig` expands sweeps before it validates
the ladder (:func:`pull_sweeps`) and keeps them in ``StudyConfig.sweeps`` so a report can plot
each sweep's scores against its knob values.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

import numpy as np
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from emulators.fidelity import check_folder_name, parse_level

__all__ = [
    "COUNT_KNOBS",
    "PERTURBATION_KNOBS",
    "SETTINGS_KNOB",
    "Sweep",
    "SweepRange",
    "check_sweeps",
    "expand_sweep",
    "knob_values",
    "pull_sweeps",
    "sweep_values",
]

COUNT_KNOBS = tuple(
    f"emulator.{key}"
    for key in (
        "train_samples",
        "hidden_features",
        "hidden_layers",
        "transforms",
        "components",
        "max_epochs",
    )
)
"""Knobs of ``emulator`` levels: positive whole numbers, fewer is simpler."""
PERTURBATION_KNOBS = ("bias", "extra_noise_std")
"""Knobs of ``perturbed`` levels: one scalar for every output, larger in size is simpler."""
SETTINGS_KNOB = "simulator.settings."
"""Prefix of a ``reduced_simulator`` level's setting, e.g. ``simulator.settings.dt``."""
_ALLOWED = ", ".join((*COUNT_KNOBS, *PERTURBATION_KNOBS, f"{SETTINGS_KNOB}<key>"))


class SweepRange(BaseModel):
    """``num`` values from ``start`` to ``stop`` (both included), evenly or log-evenly spaced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    start: float = Field(allow_inf_nan=False)
    stop: float = Field(allow_inf_nan=False)
    num: int = Field(ge=2)
    log: bool = False


class Sweep(BaseModel):
    """One knob swept over values, from a base level spec (a ``sweep:`` ladder entry).

    Attributes
    ----------
    name : str
        Prefix of the generated level names (``<name>-<value>``); folder-safe.
    base : dict
        A level spec as written in a ladder (any ``kind``), without ``name`` and
        ``simplification`` and without the knob itself.
    knob : str
        Dotted path of the setting swept (see the module docstring for the allowed knobs).
    values : tuple of numbers, optional
        The knob's values; give ``values`` or ``range``.
    range : SweepRange, optional
        ``{start, stop, num, log}``; whole-number knobs are rounded.
    simpler : {"larger", "smaller"}, optional
        Which direction simplifies, for ``simulator.settings.<key>`` knobs only (required there).
    simplification_offset : float
        Added to every generated level's ``simplification``.
    description : str
        Prefix of every generated level's description.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    base: dict[str, Any] = Field(default_factory=dict)
    knob: str
    values: tuple[int | float, ...] | None = Field(default=None, min_length=2)
    range: SweepRange | None = None
    simpler: Literal["larger", "smaller"] | None = None
    simplification_offset: float = Field(0.0, allow_inf_nan=False)
    description: str = ""

    @field_validator("name")
    @classmethod
    def _folder_safe(cls, name: str) -> str:
        return check_folder_name(name, "sweep")

    @field_validator("knob")
    @classmethod
    def _known_knob(cls, knob: str) -> str:
        if knob in COUNT_KNOBS or knob in PERTURBATION_KNOBS:
            return knob
        if knob.startswith(SETTINGS_KNOB) and len(knob) > len(SETTINGS_KNOB):
            return knob
        raise ValueError(f"unknown knob {knob!r}; a sweep's knob is one of: {_ALLOWED}")

    @field_validator("base")
    @classmethod
    def _no_generated_fields(cls, base: dict[str, Any]) -> dict[str, Any]:
        taken = sorted({"name", "simplification"} & set(base))
        if taken:
            raise ValueError(
                f"base sets {taken}, which the sweep generates for each level; remove them"
            )
        return base

    @model_validator(mode="after")
    def _consistent(self) -> Sweep:
        """Check what depends on several fields: values or range, the kind, ``simpler``."""
        if (self.values is None) == (self.range is None):
            raise ValueError(
                f"sweep {self.name!r}: give either `values: [...]` or `range: {{start, stop, "
                "num, log}`, exactly one of them"
            )
        kind = self.base.get("kind", "emulator")
        wanted = _knob_kind(self.knob)
        if kind != wanted:
            raise ValueError(
                f"sweep {self.name!r}: knob {self.knob!r} belongs to {wanted!r} levels but base "
                f"has kind {kind!r}; set `kind: {wanted}` in base or sweep another knob "
                f"(allowed knobs: {_ALLOWED})"
            )
        settings_knob = self.knob.startswith(SETTINGS_KNOB)
        if settings_knob and self.simpler is None:
            raise ValueError(
                f"sweep {self.name!r}: knob {self.knob!r} is a simulator setting, whose simpler "
                "direction is not known; add `simpler: larger` (e.g. a time step) or "
                "`simpler: smaller` (e.g. a number of particles)"
            )
        if not settings_knob and self.simpler is not None:
            raise ValueError(
                f"sweep {self.name!r}: `simpler` applies to simulator.settings knobs only; "
                f"{self.knob!r} has a known direction, remove `simpler`"
            )
        if _get(self.base, self.knob) is not None:
            raise ValueError(
                f"sweep {self.name!r}: base already sets {self.knob!r}; remove it from base "
                "(the sweep sets it for each level)"
            )
        sweep_values(self)  # raises on bad values
        return self


def _knob_kind(knob: str) -> str:
    if knob in COUNT_KNOBS:
        return "emulator"
    if knob in PERTURBATION_KNOBS:
        return "perturbed"
    return "reduced_simulator"


def _get(spec: dict[str, Any], path: str) -> Any:
    node: Any = spec
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _set(spec: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"cannot set {path!r}: {part!r} of base is not a mapping")
    node[leaf] = value


def sweep_values(sweep: Sweep) -> tuple[int | float, ...]:
    """The knob's values, in the order given (whole numbers for count knobs).

    Raises
    ------
    ValueError
        Naming the sweep and knob: repeated values (also after rounding a range), values that
        are not positive whole numbers for a count knob, a log range through zero.
    """
    where = f"sweep {sweep.name!r} ({sweep.knob})"
    if sweep.range is not None:
        r = sweep.range
        if r.log and (r.start <= 0 or r.stop <= 0):
            raise ValueError(f"{where}: a log range needs start and stop > 0, got {r}")
        spaced = np.geomspace if r.log else np.linspace
        raw: tuple[float, ...] = tuple(float(v) for v in spaced(r.start, r.stop, r.num))
    else:
        raw = tuple(sweep.values or ())
    if sweep.knob in COUNT_KNOBS:
        if sweep.values is not None and any(float(v) != round(v) for v in raw):
            raise ValueError(f"{where}: values must be whole numbers, got {list(raw)}")
        values: tuple[int | float, ...] = tuple(int(round(v)) for v in raw)
        if any(v <= 0 for v in values):
            raise ValueError(f"{where}: values must be positive, got {list(values)}")
    elif sweep.knob.startswith(SETTINGS_KNOB) and sweep.values is not None:
        values = raw  # a simulator may want whole numbers (e.g. a number of particles)
    else:
        values = tuple(float(v) for v in raw)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{where}: values must be finite, got {list(values)}")
    if len(set(values)) != len(values):
        raise ValueError(
            f"{where}: values repeat ({list(values)}); give distinct values, or fewer `num` "
            "when a range of whole numbers rounds two values to one"
        )
    return values


def _simplifications(sweep: Sweep, values: tuple[int | float, ...]) -> list[float]:
    """The rule of the module docstring, larger = more simplified, plus the sweep's offset."""
    v = np.asarray(values, dtype=np.float64)
    if sweep.knob in PERTURBATION_KNOBS:
        s = np.abs(v)
    else:
        larger = sweep.knob.startswith(SETTINGS_KNOB) and sweep.simpler == "larger"
        if np.all(v > 0):
            s = np.log10(v / v.min()) if larger else np.log10(v.max() / v)
        else:
            s = v - v.min() if larger else v.max() - v
    return [float(x) + sweep.simplification_offset for x in s]


def _label(value: int | float) -> str:
    """A folder-safe rendering: 0.005 -> 0p005, -0.5 -> m0p5, 1e-05 -> 1em05."""
    text = str(value) if isinstance(value, int) else f"{value:g}"
    return text.replace(".", "p").replace("-", "m").replace("+", "")


def expand_sweep(sweep: Sweep) -> list[dict[str, Any]]:
    """The sweep's levels as plain level specs (as if written in the ladder), in value order.

    Returns
    -------
    levels : list of dict
        One per value: ``base`` with the knob set, ``name`` ``<sweep.name>-<value>`` and the
        derived ``simplification``; each is checked with :func:`emulators.fidelity.parse_level`.

    Raises
    ------
    ValueError
        If two values render to one name, or a generated level is invalid (naming the level,
        the knob and the value).
    """
    values = sweep_values(sweep)
    names = [f"{sweep.name}-{_label(v)}" for v in values]
    if len(set(names)) != len(names):
        raise ValueError(
            f"sweep {sweep.name!r}: values {list(values)} give repeated level names {names}; "
            "give values that differ in their first 6 significant digits"
        )
    levels = []
    for name, value, simplification in zip(
        names, values, _simplifications(sweep, values), strict=True
    ):
        level = copy.deepcopy(sweep.base)
        _set(level, sweep.knob, value)
        text = f"{sweep.description}; " if sweep.description else ""
        level.update(
            name=name,
            simplification=simplification,
            description=f"{text}sweep {sweep.name}: {sweep.knob}={value}",
        )
        try:
            parse_level(level)
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in err.errors()
            )
            raise ValueError(
                f"sweep {sweep.name!r} level {name!r} ({sweep.knob}={value}) is invalid: "
                f"{problems}; change base or the values"
            ) from err
        levels.append(level)
    return levels


def knob_values(sweep: Sweep) -> dict[str, int | float]:
    """The knob's value of each generated level, by level name (the x of a dose-response)."""
    names = [level["name"] for level in expand_sweep(sweep)]
    return dict(zip(names, sweep_values(sweep), strict=True))


def pull_sweeps(raw: Any) -> Any:
    """Expand a raw study config's ``- sweep: {...}`` ladder entries in place; keep the sweeps.

    For :class:`pipelines.config.StudyConfig` (a ``mode="before"`` validator): the ladder gets
    the generated levels where the sweep stood, and ``sweeps`` gets the validated sweeps
    (appended to any already given, as in a saved resolved config).

    Raises
    ------
    ValueError
        Naming the entry (``ladder.<i>.sweep``), with the problem and the fix.
    """
    if not isinstance(raw, dict) or not isinstance(raw.get("ladder"), list | tuple):
        return raw
    ladder, sweeps = [], list(raw.get("sweeps") or ())
    for index, entry in enumerate(raw["ladder"]):
        if not (isinstance(entry, dict) and "sweep" in entry):
            ladder.append(entry)
            continue
        where = f"ladder.{index}.sweep"
        if len(entry) != 1:
            others = sorted(set(entry) - {"sweep"})
            raise ValueError(f"{where}: a sweep entry holds only `sweep:`; move {others} into it")
        try:
            sweep = Sweep.model_validate(entry["sweep"])
            ladder.extend(expand_sweep(sweep))
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'sweep'}: "
                f"{e['msg'].removeprefix('Value error, ')}"
                for e in err.errors()
            )
            raise ValueError(f"{where}: {problems}") from err
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from err
        sweeps.append(sweep)
    return {**raw, "ladder": ladder, "sweeps": sweeps}


def check_sweeps(sweeps: tuple[Sweep, ...], level_names: list[str]) -> None:
    """Refuse repeated sweep names and sweeps whose levels are missing from the ladder.

    Raises
    ------
    ValueError
    """
    names = [sweep.name for sweep in sweeps]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"sweep names must be unique, repeated: {repeated}; rename one")
    for sweep in sweeps:
        missing = [lv["name"] for lv in expand_sweep(sweep) if lv["name"] not in level_names]
        if missing:
            raise ValueError(
                f"sweep {sweep.name!r} generates levels {missing} that the ladder lacks; write "
                "sweeps as ladder entries (`- sweep: {...}`), not under `sweeps:`"
            )
