"""Inference methods as data: a registry of small classes, one module and one line each.

A study names its methods (``inference.methods: [npe, nle, ...]``); each is an
:class:`InferenceMethod` that trains a :class:`~inference.posterior.Posterior` from simulated
pairs and loads one back from its file. Built-ins are listed in :data:`BUILTIN_METHODS` as
``module:Class`` strings (imported only when used, so listing methods imports no sbi); third-party
packages add their own under the entry-point group ``emustudy.methods``::

    [project.entry-points."emustudy.methods"]
    my_method = "my_package.method:MyMethod"

:func:`train_posterior_to` trains into a file, resuming a killed training and skipping a done one.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel

from inference.checkpoint import read_checkpoint
from inference.errors import ResultFileError
from inference.posterior import Posterior
from inference.resume import StateFolder
from inference.seeds import check_seed
from inference.settings import MethodSettings
from simulators.errors import ConfigError
from simulators.prior import Prior

__all__ = [
    "BUILTIN_METHODS",
    "METHOD_ENTRY_POINT_GROUP",
    "InferenceMethod",
    "Likelihood",
    "MethodContext",
    "available_methods",
    "get_method",
    "load_posterior",
    "train_posterior",
    "train_posterior_to",
]

METHOD_ENTRY_POINT_GROUP = "emustudy.methods"
BUILTIN_METHODS: dict[str, str] = {
    "npe": "inference.npe:NPEMethod",
    "nle": "inference.nle:NLEMethod",
    "nre": "inference.nre:NREMethod",
    "emulator_likelihood": "inference.likelihood_mcmc:EmulatorLikelihoodMethod",
    "nnpe": "inference.nnpe:NNPEMethod",
    "rnpe": "inference.rnpe:RNPEMethod",
    "mmd_npe": "inference.mmd_npe:MMDNPEMethod",
}


@runtime_checkable
class Likelihood(Protocol):
    """A density ``q(x | theta)`` that MCMC can sample a posterior with (an emulator, or a
    simulator's own likelihood)."""

    name: str

    def log_likelihood(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Pairwise ``log q(x_i | theta_i)``: theta ``(n, p)``, x ``(n, d)`` -> ``(n,)``."""
        ...


@dataclass(frozen=True)
class MethodContext:
    """What a method may need beyond the pairs.

    Attributes
    ----------
    likelihood : Likelihood, optional
        For methods that sample a given likelihood (``emulator_likelihood``).
    likelihood_id : str
        What the likelihood is (e.g. the emulator file and its digest): part of the posterior's
        fingerprint, so a retrained emulator makes the posterior stale.
    x_obs : (n_obs, d), optional
        Observed data, for methods that adapt to it at training time (robust methods).
    checkpoint : path, optional
        A folder for resumable training state.
    checkpoint_every : float
    progress : bool
    """

    likelihood: Likelihood | None = None
    likelihood_id: str = ""
    x_obs: np.ndarray | None = None
    checkpoint: Path | None = None
    checkpoint_every: float = 1.0
    progress: bool = False


class InferenceMethod(ABC):
    """One way to get a posterior from simulated pairs.

    Attributes
    ----------
    name : str
        Registered name (what configs write).
    description : str
        One line for ``emustudy validate`` and the report.
    trains : bool
        Whether it trains a network on the pairs (``False``: it only samples a given
        likelihood, and the pairs are not used).
    needs_likelihood : bool
        Whether it needs ``context.likelihood``.
    needs_observations : bool
        Whether training needs the observed data (``context.x_obs``), as robust methods that
        adapt to the observations do.
    amortised : bool
        Whether sampling at a new observation is cheap (no MCMC): scores over many test pairs
        use fewer pairs for methods that are not.
    options_model : pydantic model class, optional
        Validates ``settings.options[name]``.
    """

    name: ClassVar[str]
    description: ClassVar[str]
    trains: ClassVar[bool] = True
    needs_likelihood: ClassVar[bool] = False
    needs_observations: ClassVar[bool] = False
    amortised: ClassVar[bool] = True
    options_model: ClassVar[type[BaseModel] | None] = None

    def options(self, settings: MethodSettings) -> BaseModel | None:
        """This method's options from ``settings.options``, validated (None without a model)."""
        if self.options_model is None:
            return None
        return self.options_model.model_validate(settings.options.get(self.name, {}))

    def relevant_settings(self, settings: MethodSettings) -> BaseModel:
        """The part of ``settings`` this method's result depends on (digested with the data).

        By default the network and its training; methods that sample by MCMC add ``mcmc``, and
        methods with options add their own.
        """
        return settings.network

    @abstractmethod
    def train(
        self,
        theta: np.ndarray,
        x: np.ndarray,
        prior: Prior,
        settings: MethodSettings,
        *,
        seed: int,
        context: MethodContext,
    ) -> Posterior:
        """Train a posterior on pairs ``theta`` ``(n, p)`` and ``x`` ``(n, d)`` from ``prior``."""

    @abstractmethod
    def load(
        self, payload: dict[str, Any], prior: Prior, path: Path, context: MethodContext
    ) -> Posterior:
        """Rebuild a posterior from a checked file payload (:func:`inference.read_checkpoint`)."""

    def fingerprint(
        self,
        theta: np.ndarray,
        x: np.ndarray,
        prior: Prior,
        settings: MethodSettings,
        seed: int,
        context: MethodContext,
    ) -> str:
        """Digest of everything the posterior depends on (its file is kept when it matches)."""
        from inference.resume import training_fingerprint

        relevant = self.relevant_settings(settings)
        digest = training_fingerprint(theta, x, prior, relevant, seed, self.name)
        return digest if not context.likelihood_id else f"{digest}-{context.likelihood_id}"


@cache
def _entry_point_methods() -> dict[str, str]:
    found = {}
    for entry in entry_points(group=METHOD_ENTRY_POINT_GROUP):
        if entry.name in BUILTIN_METHODS:
            warnings.warn(
                f"inference method plugin {entry.name!r} is ignored: a built-in has that name",
                RuntimeWarning,
                stacklevel=3,
            )
            continue
        found[entry.name] = entry.value
    return found


def available_methods() -> list[str]:
    """Names of every registered inference method, built-in and plugin, sorted."""
    return sorted({*_entry_point_methods(), *BUILTIN_METHODS, *_REGISTERED})


_REGISTERED: dict[str, type[InferenceMethod]] = {}


def register_method(cls: type[InferenceMethod]) -> type[InferenceMethod]:
    """Register a method class at run time (tests, notebooks); plugins use entry points."""
    if cls.name in BUILTIN_METHODS:
        raise ConfigError(f"inference method {cls.name!r} is built in; choose another name")
    _REGISTERED[cls.name] = cls
    return cls


def get_method(name: str) -> InferenceMethod:
    """The registered method ``name``.

    Raises
    ------
    ConfigError
        If no method has that name (the message lists the known ones and how to add one), or
        a plugin fails to import.
    """
    if name in _REGISTERED:
        return _REGISTERED[name]()
    target = {**_entry_point_methods(), **BUILTIN_METHODS}.get(name)
    if target is None:
        known = ", ".join(sorted({*available_methods(), *_REGISTERED}))
        raise ConfigError(
            f"unknown inference method {name!r}; known methods: {known}. Use one of those, or "
            f"register your own class under the entry-point group {METHOD_ENTRY_POINT_GROUP!r}"
        )
    module, _, attribute = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"inference method {name!r} ({target}) failed to load: {err}") from err
    return cls()


def train_posterior(
    method: str,
    theta: np.ndarray,
    x: np.ndarray,
    prior: Prior,
    settings: MethodSettings,
    *,
    seed: int,
    context: MethodContext | None = None,
) -> Posterior:
    """Train a posterior with the registered method ``method``.

    Parameters
    ----------
    method : str
    theta : (n, n_params)
    x : (n, n_outputs)
    prior : Prior
    settings : MethodSettings
    seed : int
    context : MethodContext, optional

    Raises
    ------
    ConfigError
        For an unknown method, bad arrays, or a method that needs a likelihood given none.
    """
    chosen = get_method(method)
    context = context or MethodContext()
    if chosen.needs_likelihood and context.likelihood is None:
        raise ConfigError(
            f"inference method {method!r} samples a likelihood q(x | theta) and was given none; "
            "pass context=MethodContext(likelihood=...) (a trained emulator, or a simulator with "
            "log_likelihood)"
        )
    return chosen.train(theta, x, prior, settings, seed=check_seed(seed), context=context)


def load_posterior(
    path: str | os.PathLike[str], prior: Prior, *, context: MethodContext | None = None
) -> Posterior:
    """Read a posterior file of any registered method.

    Raises
    ------
    ResultFileError
        If the file is missing, unsafe, of an unknown format or does not rebuild.
    ConfigError
        If ``prior`` differs from the prior it was trained with, or its method needs a
        likelihood and ``context`` gives none.
    """
    payload = read_checkpoint(path)
    if payload["prior"] != prior.model_dump(mode="json"):
        raise ConfigError(
            f"the posterior in {path} was trained with prior {payload['prior']}, but load "
            f"got {prior.model_dump(mode='json')}; pass the prior it was trained with"
        )
    chosen = get_method(str(payload["method"]))
    context = context or MethodContext()
    if chosen.needs_likelihood and context.likelihood is None:
        raise ConfigError(
            f"the posterior in {path} ({payload['method']}) samples the likelihood "
            f"{payload['extra'].get('likelihood', '?')!r} by MCMC; pass "
            "context=MethodContext(likelihood=...) to load it"
        )
    return chosen.load(payload, prior, Path(path), context)


def train_posterior_to(
    path: str | os.PathLike[str],
    method: str,
    theta: np.ndarray,
    x: np.ndarray,
    prior: Prior,
    settings: MethodSettings,
    *,
    seed: int,
    context: MethodContext | None = None,
) -> bool:
    """Train a posterior into ``path``, resuming a killed training and skipping a done one.

    Training saves its state in the folder ``<stem>.training`` beside ``path``, removed once the
    posterior is written. A posterior already at ``path`` made from these very inputs (same
    fingerprint) is kept as it is.

    Returns
    -------
    trained : bool
        False when ``path`` already held this posterior and nothing was trained.
    """
    path = Path(path)
    context = context or MethodContext()
    chosen = get_method(method)
    fingerprint = chosen.fingerprint(theta, x, prior, settings, check_seed(seed), context)
    if path.is_file():
        with contextlib.suppress(ResultFileError):
            if read_checkpoint(path).get("fingerprint") == fingerprint:
                return False
    folder = StateFolder(path.with_name(f"{path.stem}.training"))
    context = MethodContext(**{**context.__dict__, "checkpoint": folder.folder})
    posterior = train_posterior(method, theta, x, prior, settings, seed=seed, context=context)
    posterior.fingerprint = fingerprint  # type: ignore[attr-defined]
    posterior.save(path)
    folder.clear()
    return True
