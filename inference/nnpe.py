"""Noisy NPE (NNPE): NPE trained on simulations with spike-and-slab noise added (Ward et al.).

Ward et al. (2022) use NNPE as the simple robust baseline to RNPE: every simulated summary gets
independent noise from the spike-and-slab model of :class:`~inference.spike_slab.SpikeSlab`
(with probability ``slab_prob`` a heavy-tailed Cauchy draw of scale ``slab_scale``, otherwise a
tiny Gaussian of scale ``spike_scale``), in units of that summary's standard deviation over the
simulations, and NPE is trained on ``(theta, x + noise)``. The posterior network has then seen
summaries that are far from what the model produces and learned to discount them, so an
observation with a few misspecified summaries does not throw it off. It is applied to the
observation as it is (no denoising), so it stays amortised.

The network's input standardisation is taken from the *clean* simulations (as in the paper,
which z-scores before adding noise): Cauchy draws would otherwise inflate the standard deviations
and squash the clean summaries together.

The noise is drawn from a numpy generator seeded by ``child_seed(seed, 0x4E4E)``; the same seed
gives the same noisy training set and, through :func:`~inference.npe.train_npe`, the same
posterior. Options (``inference.options.nnpe``) are the fields of
:class:`~inference.spike_slab.SpikeSlab`, defaulting to the paper's values.

References
----------
Ward, D., Cannon, P., Beaumont, M., Fasiolo, M. & Schmon, S. M. (2022). Robust neural posterior
estimation and statistical model criticism. NeurIPS 35. arXiv:2210.06564.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel

from inference.methods import MethodContext
from inference.npe import NPEMethod, NPEPosterior, train_npe
from inference.posterior import check_pairs
from inference.robust import WithOptions, output_scale
from inference.seeds import child_seed
from inference.settings import MethodSettings, network_builder
from inference.spike_slab import SpikeSlab
from simulators.prior import Prior

__all__ = ["NNPEMethod", "noisy_outputs"]

_NOISE_STREAM = 0x4E4E


def noisy_outputs(x: np.ndarray, noise: SpikeSlab, seed: int) -> np.ndarray:
    """``x`` with spike-and-slab noise in units of each output's standard deviation.

    Parameters
    ----------
    x : (n, d)
    noise : SpikeSlab
    seed : int

    Returns
    -------
    noisy : (n, d) float64
    """
    rng = np.random.default_rng(child_seed(seed, _NOISE_STREAM))
    return np.asarray(noise.add(np.asarray(x, dtype=np.float64), rng, output_scale(x)))


class NNPEMethod(NPEMethod):
    """NNPE: NPE on spike-and-slab-noised simulations; an amortised :class:`NPEPosterior`."""

    name: ClassVar[str] = "nnpe"
    description: ClassVar[str] = (
        "noisy NPE (Ward et al. 2022): NPE trained on spike-and-slab-noised simulations, amortised"
    )
    options_model: ClassVar[type[BaseModel] | None] = SpikeSlab

    def relevant_settings(self, settings: MethodSettings) -> BaseModel:
        """The network, its training and the noise."""
        options = self.options(settings)
        assert options is not None
        return WithOptions(network=settings.network.model_dump(), options=options.model_dump())

    def train(
        self,
        theta: np.ndarray,
        x: np.ndarray,
        prior: Prior,
        settings: MethodSettings,
        *,
        seed: int,
        context: MethodContext,
    ) -> NPEPosterior:
        """Train NPE on ``theta`` ``(n, p)`` and noised ``x`` ``(n, d)``."""
        theta_t, x_t = check_pairs(theta, x, prior)
        noise = self.options(settings)
        assert isinstance(noise, SpikeSlab)
        base = network_builder(settings.network, "posterior", prior)

        def clean_standardisation(_theta: Any, _x: Any) -> Any:
            return base(theta_t, x_t)

        return train_npe(
            theta_t.double().numpy(),
            noisy_outputs(x_t.double().numpy(), noise, seed),
            prior,
            settings,
            seed=seed,
            progress=context.progress,
            checkpoint=context.checkpoint,
            checkpoint_every=context.checkpoint_every,
            method=self.name,
            builder=clean_standardisation,
        )
