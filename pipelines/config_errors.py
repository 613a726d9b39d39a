"""Turn pydantic's validation errors into lines that name the field, the problem and the fix.

Each line reads ``<field path>: <problem> (got <value>); <fix>``, e.g.
``ladder.2.simplification: Field required; add `simplification: <number>` to ladder.2``. The
fix is derived from the field's declared type, so a new setting gets a useful message for free.
"""

from __future__ import annotations

import types
from pathlib import PurePath
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

__all__ = ["describe_errors"]

# pydantic puts the tag of a ladder level's kind into the path; users never wrote it
_LEVEL_KINDS = ("emulator", "reduced_simulator", "perturbed")
_BOUNDS = {
    "greater_than": ("gt", "greater than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}
_SCALARS = (
    "int_parsing",
    "int_type",
    "int_from_float",
    "float_parsing",
    "float_type",
    "bool_parsing",
    "bool_type",
    "string_type",
    "path_type",
)
_MAPPINGS = ("model_type", "model_attributes_type", "dict_type")
_SEQUENCES = ("tuple_type", "list_type")


def _unwrap(kind: Any) -> Any:
    while get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    return kind


def _members(kind: Any) -> list[Any]:
    """The alternatives of a union (None left out), else ``[kind]``; members keep their tags."""
    kind = _unwrap(kind)
    if get_origin(kind) in (Union, types.UnionType):
        return [m for m in get_args(kind) if m is not type(None)]
    return [kind]


def _tag(kind: Any) -> str | None:
    if get_origin(kind) is Annotated:
        for extra in get_args(kind)[1:]:
            tag = getattr(extra, "tag", None)
            if isinstance(tag, str):
                return tag
    return None


def _is_model(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, BaseModel)


def _step(kind: Any, part: str | int) -> Any:
    """The declared type one step down a validation error's path, or None if unknown."""
    members = _members(kind)
    if len(members) > 1:
        for member in members:
            if _tag(member) == part:
                return _unwrap(member)
        found = [_step(member, part) for member in members]
        return next((f for f in found if f is not None), None)
    kind = _unwrap(members[0])
    if _is_model(kind):
        field = kind.model_fields.get(part) if isinstance(part, str) else None
        return None if field is None else field.annotation
    origin = get_origin(kind)
    if origin in (tuple, list) and isinstance(part, int):
        return get_args(kind)[0]
    if origin is dict and isinstance(part, str):
        return get_args(kind)[1]
    return None


def _declared(model: type[BaseModel], loc: tuple[str | int, ...]) -> Any:
    kind: Any = model
    for part in loc:
        kind = _step(kind, part)
        if kind is None:
            return None
    return kind


def _placeholder(kind: Any, depth: int = 0) -> str:
    """How a value of ``kind`` is written in YAML, e.g. ``<number>`` or ``{name: <text>, ...}``."""
    shown = []
    for member in _members(kind):
        member = _unwrap(member)
        origin = get_origin(member)
        if member is bool:
            shown.append("true or false")
        elif member is int:
            shown.append("<whole number>")
        elif member is float:
            shown.append("<number>")
        elif member is str:
            shown.append("<text>")
        elif isinstance(member, type) and issubclass(member, PurePath):
            shown.append("<path>")
        elif origin is Literal:
            shown.append(" or ".join(repr(v) for v in get_args(member)))
        elif _is_model(member) and depth == 0:
            fields = member.model_fields
            required = [
                f"{k}: {_placeholder(f.annotation, 1)}"
                for k, f in fields.items()
                if f.is_required()
            ]
            more = len(required) < len(fields)
            shown.append("{" + ", ".join(required + (["..."] if more else [])) + "}")
        elif _is_model(member) or origin is dict:
            shown.append("{...}")
        elif origin in (tuple, list):
            shown.append("[...]")
    return " or ".join(dict.fromkeys(shown)) or "<value>"


def _keys(kind: Any) -> str:
    names = [
        name for m in _members(kind) if _is_model(_unwrap(m)) for name in _unwrap(m).model_fields
    ]
    return ", ".join(dict.fromkeys(names))


def _fix(model: type[BaseModel], item: dict[str, Any], where: str) -> str:
    """What to change, from the error's type and the declared type of the field."""
    loc, kind, context = tuple(item["loc"]), item["type"], item.get("ctx") or {}
    leaf = str(loc[-1]) if loc else where
    parent = ".".join(str(p) for p in _shown_loc(loc[:-1]))
    declared = _declared(model, loc)
    if kind == "missing":
        return f"add `{leaf}: {_placeholder(declared)}`" + (f" to {parent}" if parent else "")
    if kind == "extra_forbidden":
        allowed = _keys(_declared(model, loc[:-1]))
        return f"remove `{leaf}` or correct its spelling; {parent or 'the config'} takes: {allowed}"
    if kind in _BOUNDS:
        key, words = _BOUNDS[kind]
        return f"set {where} to a number {words} {context.get(key)}"
    if kind in _SCALARS:
        return f"write {where} as {_placeholder(declared)}"
    if kind in _MAPPINGS:
        keys = _keys(declared)
        return f"write {where} as a mapping of `key: value` entries" + (
            f" with keys from: {keys}" if keys else ""
        )
    if kind in _SEQUENCES:
        return f"write {where} as a list, one `- ...` item per entry"
    if kind == "too_short":
        if loc == ("ladder",):
            return "add at least one level, e.g. `- {name: full, simplification: 0, emulator: {}}`"
        return f"give {where} at least {context.get('min_length')} item(s)"
    if kind in ("literal_error", "level_kind", "enum"):
        return "use one of the values listed"
    if kind == "finite_number":
        return f"set {where} to a finite number"
    if kind.startswith("value_error") or kind == "assertion_error":
        return ""  # our validators' messages say the fix themselves
    return "see configs/quickstart.yaml for a commented example of every setting"


def _shown_loc(loc: tuple[str | int, ...]) -> tuple[str | int, ...]:
    if len(loc) > 2 and loc[0] == "ladder" and loc[2] in _LEVEL_KINDS:
        return loc[:2] + loc[3:]  # drop the union's tag: the level's kind, not a field
    return loc


def describe_errors(err: ValidationError, model: type[BaseModel]) -> str:
    """One line per invalid field of ``model``: where, what is wrong, what was given, the fix.

    Parameters
    ----------
    err : pydantic.ValidationError
        From validating ``model``.
    model : type of BaseModel
        The model that was validated (its field types give the fixes).
    """
    lines = []
    for item in err.errors():
        where = ".".join(str(part) for part in _shown_loc(tuple(item["loc"]))) or "(top level)"
        received = item.get("input")
        shown = (
            ""
            if isinstance(received, dict) or item["type"] == "missing"
            else f" (got {received!r})"
        )
        fix = _fix(model, item, where)
        lines.append(f"  {where}: {item['msg']}{shown}" + (f"; {fix}" if fix else ""))
    return "\n".join(lines)
