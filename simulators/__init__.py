"""Simulators: the Simulator interface, priors, the registry, built-in models and the store."""

from simulators.base import ExactPosterior, Simulator
from simulators.errors import ConfigError, EmustudyError, StaleOutputError, StoreError
from simulators.external import ExternalCommand
from simulators.gaussian_linear import GaussianLinear
from simulators.hodgkin_huxley import HodgkinHuxley
from simulators.lorenz96 import Lorenz96
from simulators.lorenz96_reduced import Lorenz96Reduced
from simulators.prior import Parameter, Prior
from simulators.registry import available_simulators, make_simulator, refresh_plugins, register
from simulators.seeding import Stream, sample_seeds

__all__ = [
    "ConfigError",
    "EmustudyError",
    "ExactPosterior",
    "ExternalCommand",
    "GaussianLinear",
    "HodgkinHuxley",
    "Lorenz96",
    "Lorenz96Reduced",
    "Parameter",
    "Prior",
    "Simulator",
    "StaleOutputError",
    "StoreError",
    "Stream",
    "available_simulators",
    "refresh_plugins",
    "make_simulator",
    "register",
    "sample_seeds",
]
