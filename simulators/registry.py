"""The simulator registry: built-ins register at import, plugins through entry points.

A third-party package adds a simulator without touching emustudy::

    [project.entry-points."emustudy.simulators"]
    my_model = "my_package.simulator:MyModel"

where ``MyModel(**settings)`` returns a :class:`simulators.base.Simulator`.

The entry points are scanned once per process (a scan reads every installed distribution's
metadata: ~6 ms, more than building any built-in simulator); :func:`refresh_plugins` scans
again, e.g. after installing a plugin into a running session. :func:`make_simulator` still
builds a new instance on every call: simulators are not immutable (``ExternalCommand`` records
``last_failures`` on each run, settings such as ``Lorenz96.fixed`` are plain dicts), so one
shared instance would carry one caller's state into another's. Whoever wants one instance per
process keeps it, as :func:`pipelines.units.study_simulator` does.
"""

from __future__ import annotations

import importlib
import inspect
import warnings
from collections.abc import Callable
from functools import cache
from importlib.metadata import entry_points
from typing import Any

from simulators.base import Simulator
from simulators.errors import ConfigError

__all__ = [
    "BUILTIN_SIMULATORS",
    "ENTRY_POINT_GROUP",
    "register",
    "make_simulator",
    "available_simulators",
    "refresh_plugins",
    "unknown_simulator_message",
]

ENTRY_POINT_GROUP = "emustudy.simulators"

BUILTIN_SIMULATORS: dict[str, str] = {
    "external": "simulators.external:ExternalCommand",
    "gaussian_linear": "simulators.gaussian_linear:GaussianLinear",
    "hodgkin_huxley": "simulators.hodgkin_huxley:HodgkinHuxley",
    "lorenz96": "simulators.lorenz96:Lorenz96",
    "lorenz96_reduced": "simulators.lorenz96_reduced:Lorenz96Reduced",
    "misspecified_gaussian_linear": (
        "simulators.misspecified_gaussian_linear:MisspecifiedGaussianLinear"
    ),
    "normal_location": "simulators.normal_location:NormalLocation",
    "slcp": "simulators.slcp:SLCP",
    "two_moons": "simulators.two_moons:TwoMoons",
    "ward_gaussian": "simulators.normal_location:WardGaussian",
}
"""Built-in simulators as ``module:Class``: a new one is one module plus one line here (the
modules do not import the registry, so the package has no import cycle)."""

_REGISTERED: dict[str, Callable[..., Simulator]] = {}


def register(name: str) -> Callable[[type[Simulator]], type[Simulator]]:
    """Class decorator that registers a simulator at run time (tests, notebooks) under ``name``;
    packages use the entry-point group instead."""

    def decorate(cls: type[Simulator]) -> type[Simulator]:
        if name in BUILTIN_SIMULATORS or name in _REGISTERED:
            raise ConfigError(f"simulator {name!r} is registered twice")
        _REGISTERED[name] = cls
        return cls

    return decorate


def _builtins() -> dict[str, Callable[..., Simulator]]:
    found = dict(_REGISTERED)
    for name, target in BUILTIN_SIMULATORS.items():
        module, _, attribute = target.partition(":")
        found[name] = getattr(importlib.import_module(module), attribute)
    return found


@cache
def _plugins() -> dict[str, Callable[..., Simulator]]:
    """The entry-point plugins, scanned and loaded once per process (a broken one warns once)."""
    found: dict[str, Callable[..., Simulator]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found[entry.name] = entry.load()
        except Exception as err:  # a broken plugin must not take the platform down
            warnings.warn(
                f"simulator plugin {entry.name!r} ({entry.value}) failed to load: {err}",
                RuntimeWarning,
                stacklevel=2,
            )
    return found


def refresh_plugins() -> None:
    """Forget the scanned entry points: the next lookup scans the installed plugins again."""
    _plugins.cache_clear()


def _all() -> dict[str, Callable[..., Simulator]]:
    builtins = _builtins()
    plugins = dict(_plugins())
    for name in sorted(set(plugins) & set(builtins)):
        warnings.warn(
            f"simulator plugin {name!r} is ignored: a built-in simulator has that name; "
            f"register the plugin under another name",
            RuntimeWarning,
            stacklevel=3,
        )
    return {**plugins, **builtins}


def available_simulators() -> list[str]:
    """Names of every registered simulator, built-in and plugin, sorted."""
    return sorted(_all())


def unknown_simulator_message(name: object, known: list[str]) -> str:
    """Why ``name`` names no simulator, the known names, and how to add one.

    Names are looked up, never imported: a dotted or ``module:attr`` path is refused like any
    other unknown name, so a config cannot make emustudy import arbitrary code.
    """
    hint = ""
    if isinstance(name, str) and ("." in name or ":" in name):
        hint = (
            " Simulators are chosen by registered name, not by Python import path: "
            f"{name!r} is not imported."
        )
    return (
        f"unknown simulator {name!r}; known simulators: {', '.join(sorted(known))}.{hint} "
        f"Use one of those names, or register your own under the entry-point group "
        f"{ENTRY_POINT_GROUP!r}."
    )


def _parameters(factory: Callable[..., Simulator]) -> str:
    try:
        found = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return "see its documentation"
    shown = [
        p.name if p.default is inspect.Parameter.empty else f"{p.name} (default {p.default!r})"
        for p in found
        if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    return ", ".join(shown) or "none"


def make_simulator(name: str, **settings: Any) -> Simulator:
    """Build a registered simulator.

    Raises
    ------
    ConfigError
        If ``name`` is unknown (the message lists the known names) or the settings are invalid
        (the message lists the settings the simulator takes).
    """
    factories = _all()
    if not isinstance(name, str) or name not in factories:
        raise ConfigError(unknown_simulator_message(name, list(factories)))
    try:
        return factories[name](**settings)
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"invalid settings {settings} for simulator {name!r}: {err}; it takes: "
            f"{_parameters(factories[name])}. Fix the names and types of simulator.settings"
        ) from err
