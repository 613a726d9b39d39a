"""Neural ratio estimation (sbi's NRE-B): a classifier's ``log r(x, theta)`` sampled by MCMC.

Durkan, Murray and Papamakarios (2020), "On contrastive learning for likelihood-free
inference", ICML.
"""

from __future__ import annotations

from typing import ClassVar

from inference.network_mcmc import NetworkMCMCMethod
from inference.settings import NetworkRole

__all__ = ["NREMethod"]


class NREMethod(NetworkMCMCMethod):
    """NRE: the network is a classifier of ``(theta, x)`` pairs (``classifier``)."""

    name: ClassVar[str] = "nre"
    description: ClassVar[str] = "neural ratio estimation (sbi NRE-B), sampled by MCMC"
    trainer: ClassVar[str] = "sbi.inference:NRE"
    builder_keyword: ClassVar[str] = "classifier"
    role: ClassVar[NetworkRole] = "classifier"
    potential: ClassVar[str] = "sbi.inference:ratio_estimator_based_potential"
