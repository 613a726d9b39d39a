"""Build a prior from a model's ``inferred`` and ``prior`` settings, with clear errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simulators.errors import ConfigError
from simulators.prior import Parameter, Prior

__all__ = ["prior_from_settings"]


def prior_from_settings(
    model: str,
    inferred: Sequence[str],
    overrides: Mapping[str, Mapping[str, Any]] | None,
    defaults: Mapping[str, Mapping[str, Any]],
) -> Prior:
    """The prior over ``inferred`` (theta's columns, in this order).

    Parameters
    ----------
    model : str
        Registry name, for error messages.
    inferred : sequence of str
        Non-empty, distinct names from ``defaults``.
    overrides : mapping, optional
        Per-name changes: a spec with ``distribution`` replaces the default, e.g.
        ``{"distribution": "normal", "loc": 10, "scale": 2}``; bare bounds such as
        ``{"low": 6.0}`` only move the default's bounds.
    defaults : mapping
        Default spec per name.
    """
    inferred = list(inferred)
    unknown = [n for n in inferred if n not in defaults]
    if unknown or not inferred or len(set(inferred)) != len(inferred):
        raise ConfigError(
            f"{model} setting 'inferred' must be a non-empty list of distinct names from "
            f"{list(defaults)}, got {inferred}; e.g. inferred={list(defaults)[:2]}"
        )
    overrides = dict(overrides or {})
    stray = sorted(set(overrides) - set(inferred))
    if stray:
        raise ConfigError(
            f"{model} setting 'prior' has ranges for {stray}, which are not inferred "
            f"(inferred={inferred}); add them to 'inferred' or drop them from 'prior'"
        )
    parameters = []
    for name in inferred:
        override = dict(overrides.get(name, {}))
        spec = override if "distribution" in override else {**defaults[name], **override}
        try:
            parameters.append(Parameter(name=name, **spec))
        except (ValueError, TypeError) as err:
            raise ConfigError(
                f"{model} setting prior[{name!r}]={overrides.get(name)} is invalid: {err}. "
                f"Give e.g. {dict(defaults[name])}"
            ) from err
    return Prior(parameters=tuple(parameters))
