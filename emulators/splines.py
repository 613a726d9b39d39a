"""Neural spline flows whose splines are built faster than zuko's, with the same weights.

zuko's ``MonotonicRQSTransform`` normalises the bin widths and heights with ``F.softmax`` over
the last dimension; on CPU, torch's softmax over a last dimension of 8 bins was ~5x slower than
writing it out and took 40 % of an NSF emulator's sampling time. :func:`neural_spline_flow`
builds the flow zuko's ``NSF(passes=2)`` builds (same modules, same state dict) on
:class:`RQSTransform`, which differs only there.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
import zuko
from torch import Tensor
from zuko.transforms import MonotonicRQSTransform, Transform

__all__ = ["RQSTransform", "neural_spline_flow"]


class RQSTransform(MonotonicRQSTransform):
    """zuko's monotonic rational-quadratic spline with the bin softmax written out.

    Parameters
    ----------
    widths, heights : (*, bins) tensors
        Unconstrained bin widths and heights.
    derivatives : (*, bins - 1) tensor
        Unconstrained knot derivatives.
    bound : float
        The spline's (co)domain is ``[-bound, bound]``.
    slope : float
        The minimum slope.
    """

    def __init__(
        self,
        widths: Tensor,
        heights: Tensor,
        derivatives: Tensor,
        bound: float = 5.0,
        slope: float = 1e-3,
        **kwargs,
    ) -> None:
        Transform.__init__(self, **kwargs)
        scale = math.log(slope)
        # The soft clamp bounds the logits by |log(slope)| / 2, so exp() cannot overflow and
        # the softmax needs no max subtraction.
        widths = torch.exp(widths / (1 + abs(2 * widths / scale)))
        heights = torch.exp(heights / (1 + abs(2 * heights / scale)))
        derivatives = derivatives / (1 + abs(derivatives / scale))
        widths = F.pad(widths / widths.sum(dim=-1, keepdim=True), (1, 0), value=0)
        heights = F.pad(heights / heights.sum(dim=-1, keepdim=True), (1, 0), value=0)
        derivatives = F.pad(derivatives, (1, 1), value=0)
        self.horizontal = bound * (2 * torch.cumsum(widths, dim=-1) - 1)
        self.vertical = bound * (2 * torch.cumsum(heights, dim=-1) - 1)
        self.derivatives = torch.exp(derivatives)


def neural_spline_flow(
    features: int,
    context: int,
    transforms: int,
    hidden_features: tuple[int, ...],
    bins: int = 8,
    slope: float = 1e-3,
) -> zuko.flows.MAF:
    """A conditional NSF of coupling layers: zuko's ``NSF(passes=2)`` on :class:`RQSTransform`.

    Coupling (``passes=2``), as sbi's ``nsf``: a sample costs one network pass per transform,
    where inverting autoregressive splines costs one per feature.
    """
    return zuko.flows.MAF(
        features=features,
        context=context,
        transforms=transforms,
        hidden_features=hidden_features,
        passes=2,
        univariate=functools.partial(RQSTransform, slope=slope),
        shapes=[(bins,), (bins,), (bins - 1,)],
    )
