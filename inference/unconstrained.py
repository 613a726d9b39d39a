"""NPE in an unconstrained parameter space: a posterior that cannot leak out of a bounded prior.

A density estimator trained on ``theta`` from a box-uniform prior puts some mass outside the
box, and sampling it by rejection stalls when almost all of it is outside
(:mod:`inference.leakage`). Training it instead on ``z = T^-1(theta)``, where
``T: R^d -> support`` is the bijection torch's ``biject_to`` gives for the prior's support (a
sigmoid and an affine map per parameter: what sbi's ``mcmc_transform(prior)`` builds for a bounded
prior, without its z-scoring and its prior draws), makes a density over ``theta``

    q(theta | x) = q_z(T^-1(theta) | x) |det d T^-1 / d theta|

whose every draw ``T(z)`` lies inside the support: the mass inside is exactly one.

:class:`UnconstrainedEstimator` is that density as an sbi ``ConditionalDensityEstimator`` over
``theta``: sbi's NPE trainer fits it with its usual loss (``-log q(theta | x)``, which differs from
the loss in ``z`` by the log-Jacobian, a constant of the weights), ``DirectPosterior`` samples and
evaluates it, and its ``state_dict`` is the wrapped network's (under ``net.``), so a posterior
saves and loads as before. :func:`unconstrained_builder` wraps any posterior-network builder.
"""

from __future__ import annotations

from typing import Any

import torch
from sbi.neural_nets.estimators import ConditionalDensityEstimator
from torch.distributions import Transform, biject_to

from simulators.prior import Prior

__all__ = [
    "UnconstrainedEstimator",
    "as_configured",
    "is_bounded",
    "support_bijection",
    "unconstrained_builder",
]

# theta is kept this share of the width away from a bound before T^-1, where float32 logits are
# finite: a training value rounded onto a bound would otherwise give an infinite loss.
_EDGE = 1e-6


def is_bounded(prior: Prior) -> bool:
    """Whether any parameter of ``prior`` has a bounded support (a uniform)."""
    return any(p.distribution == "uniform" for p in prior.parameters)


def support_bijection(prior: Prior) -> Transform:
    """``T``: R^d onto the support of an all-uniform ``prior``, event dimension one.

    ``T(z)_j = low_j + (high_j - low_j) sigmoid(z_j)``; ``T.inv`` is the logit of the rescaled
    ``theta`` and ``T.log_abs_det_jacobian(z, theta)`` is ``(batch,)``.

    Raises
    ------
    ConfigError
        If ``prior`` mixes normal and uniform parameters (as :meth:`Prior.to_torch`).
    """
    return biject_to(prior.to_torch().support)


class UnconstrainedEstimator(ConditionalDensityEstimator):
    """``q(theta | x)`` from a density estimator ``q_z(z | x)`` of ``z = T^-1(theta)``.

    Parameters
    ----------
    net : ConditionalDensityEstimator
        The density of ``z`` (any sbi flow or mixture).
    prior : Prior
        All-uniform; ``T`` is :func:`support_bijection` of it.
    """

    def __init__(self, net: ConditionalDensityEstimator, prior: Prior) -> None:
        super().__init__(net, net.input_shape, net.condition_shape)
        self.bijection = support_bijection(prior)
        low = torch.tensor([p.low for p in prior.parameters], dtype=torch.float32)
        high = torch.tensor([p.high for p in prior.parameters], dtype=torch.float32)
        self.register_buffer("_low", low, persistent=False)
        self.register_buffer("_high", high, persistent=False)

    @property
    def embedding_net(self) -> Any:
        """The wrapped network's embedding of ``x``."""
        return self.net.embedding_net

    def to_z(self, theta: torch.Tensor) -> torch.Tensor:
        """``T^-1(theta)``, ``theta`` ``(..., d)`` moved ``1e-6`` of the width inside a bound."""
        return _inside_inverse(self.bijection, self._low, self._high, theta)

    def to_theta(self, z: torch.Tensor) -> torch.Tensor:
        """``T(z)``, ``z`` ``(..., d)``, clamped onto the support against float32 rounding."""
        return torch.minimum(torch.maximum(self.bijection(z), self._low), self._high)

    def log_prob(self, input: torch.Tensor, condition: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """``log q_z(T^-1(theta) | x) - log |det dT/dz|``: input ``(sample, batch, d)`` or
        ``(batch, d)``, condition ``(batch, *x_shape)``; returns ``(sample, batch)``."""
        z = self.to_z(input)
        log_q = self.net.log_prob(z, condition, **kwargs)
        return log_q - self.bijection.log_abs_det_jacobian(z, self.bijection(z)).reshape(
            log_q.shape
        )

    def loss(self, input: torch.Tensor, condition: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        """``-log q(theta | x)`` per row: input ``(batch, d)`` -> ``(batch,)``."""
        return -self.log_prob(input, condition, **kwargs).reshape(-1)

    def sample(
        self, sample_shape: torch.Size, condition: torch.Tensor, **kwargs: Any
    ) -> torch.Tensor:
        """``T(z)`` for ``z ~ q_z(. | x)``: ``(*sample_shape, batch, d)``, all in the support."""
        return self.to_theta(self.net.sample(sample_shape, condition, **kwargs))


def unconstrained_builder(builder: Any, prior: Prior) -> Any:
    """A posterior-network builder whose network is the :class:`UnconstrainedEstimator` of
    ``builder``'s, built (and its z-scoring fitted) on ``T^-1(theta)``.

    Parameters
    ----------
    builder : callable
        ``builder(theta, x)`` with ``theta`` ``(batch, d)`` and ``x`` ``(batch, x_dim)``
        returning an untrained sbi density estimator.
    prior : Prior
        All-uniform.

    Returns
    -------
    callable
        ``builder(theta, x) -> UnconstrainedEstimator``.
    """
    support_bijection(prior)  # fails early on a prior it cannot map

    def build(theta: torch.Tensor, x: torch.Tensor) -> UnconstrainedEstimator:
        z = _to_z(prior, theta)
        return UnconstrainedEstimator(builder(z, x), prior)

    return build


def as_configured(builder: Any, unconstrained: bool, prior: Prior | None) -> Any:
    """``builder``, or its :func:`unconstrained_builder` when ``unconstrained`` is set and
    ``prior`` is bounded (an unbounded prior needs no map: its posterior cannot leak).

    Raises
    ------
    TypeError
        If ``unconstrained`` is set and no prior is given.
    """
    if not unconstrained:
        return builder
    if prior is None:
        raise TypeError("an unconstrained posterior network needs the prior whose support it maps")
    return unconstrained_builder(builder, prior) if is_bounded(prior) else builder


def _inside_inverse(
    bijection: Transform, low: torch.Tensor, high: torch.Tensor, theta: torch.Tensor
) -> torch.Tensor:
    """``T^-1`` of ``theta`` ``(..., d)`` kept ``_EDGE`` of the width inside ``[low, high]``."""
    margin = _EDGE * (high - low)
    return bijection.inv(torch.minimum(torch.maximum(theta, low + margin), high - margin))


def _to_z(prior: Prior, theta: torch.Tensor) -> torch.Tensor:
    low = torch.tensor([p.low for p in prior.parameters], dtype=theta.dtype)
    high = torch.tensor([p.high for p in prior.parameters], dtype=theta.dtype)
    return _inside_inverse(support_bijection(prior), low, high, theta)
