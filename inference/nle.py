"""Neural likelihood estimation (sbi's NLE-A): a learned ``q(x | theta)`` sampled by MCMC.

Papamakarios, Sterratt and Murray (2019), "Sequential neural likelihood", AISTATS; single round.
"""

from __future__ import annotations

from typing import ClassVar

from inference.network_mcmc import NetworkMCMCMethod
from inference.settings import NetworkRole

__all__ = ["NLEMethod"]


class NLEMethod(NetworkMCMCMethod):
    """NLE: the network is a conditional density of x given theta (``density_estimator``)."""

    name: ClassVar[str] = "nle"
    description: ClassVar[str] = "neural likelihood estimation (sbi NLE-A), sampled by MCMC"
    trainer: ClassVar[str] = "sbi.inference:NLE"
    builder_keyword: ClassVar[str] = "density_estimator"
    role: ClassVar[NetworkRole] = "likelihood"
    potential: ClassVar[str] = "sbi.inference:likelihood_estimator_based_potential"
