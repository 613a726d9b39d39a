"""Simulators: the Simulator interface, priors, the registry, built-in models and the store."""

from simulators.base import ExactPosterior, Likelihood, Simulator
from simulators.errors import ConfigError, EmustudyError, StaleOutputError, StoreError
from simulators.external import ExternalCommand
from simulators.gaussian_linear import GaussianLinear
from simulators.hodgkin_huxley import HodgkinHuxley
from simulators.lorenz96 import Lorenz96
from simulators.lorenz96_reduced import Lorenz96Reduced
from simulators.misspecified import Misspecified
from simulators.misspecified_gaussian_linear import MisspecifiedGaussianLinear
from simulators.normal_location import NormalLocation, WardGaussian
from simulators.prior import Parameter, Prior
from simulators.registry import available_simulators, make_simulator, refresh_plugins, register
from simulators.seeding import Stream, sample_seeds
from simulators.slcp import SLCP
from simulators.two_moons import TwoMoons

__all__ = [
    "ConfigError",
    "EmustudyError",
    "ExactPosterior",
    "ExternalCommand",
    "GaussianLinear",
    "HodgkinHuxley",
    "Likelihood",
    "Lorenz96",
    "Lorenz96Reduced",
    "Misspecified",
    "MisspecifiedGaussianLinear",
    "NormalLocation",
    "Parameter",
    "Prior",
    "SLCP",
    "Simulator",
    "StaleOutputError",
    "StoreError",
    "Stream",
    "WardGaussian",
    "TwoMoons",
    "available_simulators",
    "refresh_plugins",
    "make_simulator",
    "register",
    "sample_seeds",
]
