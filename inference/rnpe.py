"""Robust NPE (RNPE, Ward et al. 2022): denoise the observation by MCMC, then average NPE over it.

Ward et al. model an observation ``y`` as a simulated summary ``x`` seen through an error model:
``x ~ q(x)``, a density of the simulated summaries (a normalising flow fitted to them), and
``y | x`` spike-and-slab (:class:`~inference.spike_slab.SpikeSlab`: each summary is, with
probability ``slab_prob``, misspecified and off by heavy-tailed noise). Given ``y`` they draw
*denoised* summaries ``x_tilde ~ p(x | y) ∝ q(x) p(y | x)`` by MCMC and report the posterior
averaged over them, ``p(theta | y) ≈ (1/m) Σ_k q_NPE(theta | x_tilde_k)``, with ``q_NPE`` plain NPE
trained on the clean simulations. Summaries the model cannot produce are pulled back to ones it
can, while the well-specified ones stay (almost) where they were.

Here ``q(x)`` is a zuko neural spline flow on the z-scored summaries (the error model's scales are
in units of each summary's standard deviation, as in the paper), trained by
:func:`~inference.flow_training.fit_network`; the indicators are summed out of the error model
(:meth:`SpikeSlab.log_prob`), and ``x_tilde`` is drawn with sbi's ``MCMCPosterior`` on that
potential (``mcmc.sampler``, by default sbi's vectorised slice sampler; chains start at draws
from ``q``, all observations of a batch in one vectorised run). Ward et al. sample the indicators
explicitly with mixed HMC in NumPyro; summing them out gives the same ``p(x | y)``, but a chain
moves between a summary's spike (``x_j`` pinned to ``y_j``) and its slab only now and then, so
``mcmc.warmup`` and ``mcmc.chains`` matter more here than for a smooth posterior.

RNPE needs the observation to denoise, so it is not amortised: :class:`RNPEPosterior` runs the
MCMC for each observation it is asked about. Its ``log_prob`` is the mixture density over
``density_draws`` denoised draws made with a fixed seed (deterministic, normalised, and itself a
Monte Carlo estimate).

References
----------
Ward, D., Cannon, P., Beaumont, M., Fasiolo, M. & Schmon, S. M. (2022). Robust neural posterior
estimation and statistical model criticism. NeurIPS 35. arXiv:2210.06564.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, PositiveInt

from inference.checkpoint import read_settings, rebuild_network, write_checkpoint
from inference.flow_training import fit_network
from inference.methods import InferenceMethod, MethodContext
from inference.npe import NPEMethod, NPEPosterior, train_npe
from inference.observations import check_observation, check_observations
from inference.posterior import check_count, check_pairs
from inference.robust import WithOptions, output_scale
from inference.seeds import check_seed, child_seed, seeded
from inference.settings import MCMCSettings, MethodSettings, NPESettings
from inference.spike_slab import SpikeSlab
from inference.training import TrainingInfo
from simulators.prior import Prior

__all__ = ["RNPEMethod", "RNPEOptions", "RNPEPosterior"]

# Chains sampled in one vectorised call (observations x chains per observation).
_CHAINS_PER_CALL = 4096
# sbi's slice sampler opens its brackets this wide (MCMCPosterior does not pass another width),
# so the chains run on z-scored summaries divided by slab_scale / _SLICE_START_WIDTH: a first
# bracket as wide as the slab. On raw z-scores a bracket needs ~25 step-outs to span the slab.
_SLICE_START_WIDTH = 0.01


class RNPEOptions(SpikeSlab):
    """RNPE's error model (the fields of :class:`SpikeSlab`, the paper's defaults) and
    ``density_draws``, the denoised draws over which ``log_prob`` averages."""

    density_draws: PositiveInt = 100

    @property
    def error(self) -> SpikeSlab:
        """The spike-and-slab error model."""
        return SpikeSlab(**self.model_dump(include=set(SpikeSlab.model_fields)))


def _summary_flow(x_dim: int, settings: NPESettings) -> Any:
    """The unconditional density ``q(x)`` of z-scored summaries: zuko's NSF."""
    import zuko

    return zuko.flows.NSF(
        features=x_dim,
        context=0,
        transforms=settings.num_transforms,
        hidden_features=(settings.hidden_features,) * 2,
    )


def _fit_summary_density(x: torch.Tensor, settings: NPESettings, seed: int) -> tuple[Any, Any]:
    """``q(x)`` fitted to z-scored ``x`` ``(n, d)``; returns the flow and its TrainingInfo."""
    with seeded(child_seed(seed, 2)):
        flow = _summary_flow(x.shape[1], settings)
    info = fit_network(
        flow, lambda rows: -flow().log_prob(x[rows]).mean(), len(x), settings, seed=seed
    )
    return flow, info


def _denoising_potential(flow: Any, error: SpikeSlab) -> Any:
    """sbi potential ``log q(x) + log p(y | x)`` over z-scored ``x`` (``y`` set by set_x)."""
    from sbi.inference.potentials.base_potential import BasePotential

    class _Potential(BasePotential):  # type: ignore[misc, valid-type]
        def __call__(self, x: torch.Tensor, track_gradients: bool = True) -> torch.Tensor:
            with torch.set_grad_enabled(track_gradients):
                values = flow().log_prob(x) + error.log_prob(self.x_o, x)
            return torch.where(torch.isfinite(values), values, -torch.inf)

    return _Potential(flow(), None, "cpu")


class RNPEPosterior:
    """NPE averaged over denoised observations (Ward et al. 2022); a
    :class:`~inference.posterior.Posterior`, not amortised.

    Parameters
    ----------
    npe : NPEPosterior
        Trained on the clean simulations.
    flow : zuko flow
        ``q(x)`` of the z-scored summaries.
    centre, scale : (x_dim,)
        The z-scoring of the summaries.
    options : RNPEOptions
    mcmc : MCMCSettings
    settings : dict
    summary_training : TrainingInfo
        How ``q(x)`` trained (NPE's own is ``training``).
    fingerprint : str, optional
    """

    method = "rnpe"
    normalised = True

    def __init__(
        self,
        npe: NPEPosterior,
        flow: Any,
        *,
        centre: np.ndarray,
        scale: np.ndarray,
        options: RNPEOptions,
        mcmc: MCMCSettings,
        settings: dict[str, Any],
        summary_training: TrainingInfo,
        fingerprint: str | None = None,
    ) -> None:
        from sbi.inference import MCMCPosterior
        from torch.distributions.transforms import AffineTransform, IndependentTransform

        self.npe, self.flow = npe, flow.eval()
        self.prior, self.x_dim, self.training = npe.prior, npe.x_dim, npe.training
        self.centre = np.asarray(centre, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        self.options, self.mcmc, self.settings = options, mcmc, settings
        self.summary_training, self.fingerprint = summary_training, fingerprint
        self._density_cache: tuple[bytes, np.ndarray] | None = None
        self._potential = _denoising_potential(self.flow, options.error)
        with seeded(0):
            self._sampler = MCMCPosterior(
                self._potential,
                proposal=self.flow(),
                theta_transform=IndependentTransform(
                    AffineTransform(0.0, _SLICE_START_WIDTH / options.slab_scale), 1
                ),
                method=mcmc.sampler,
                thin=mcmc.thin,
                warmup_steps=mcmc.warmup,
                num_chains=mcmc.chains,
                init_strategy="proposal",
            )

    @property
    def theta_dim(self) -> int:
        """Number of parameters."""
        return self.prior.dim

    def __repr__(self) -> str:
        return f"RNPEPosterior(params={self.prior.names}, x_dim={self.x_dim}, {self.options})"

    def denoise(self, x: np.ndarray, n: int, seed: int) -> np.ndarray:
        """``n`` draws of denoised summaries ``x_tilde ~ p(x | x_b)`` for every row ``x_b``.

        The chains of a group of rows run in one vectorised MCMC call; groups are seeded from
        ``(seed, group index)``.

        Parameters
        ----------
        x : (batch, x_dim)
        n : int
        seed : int

        Returns
        -------
        x_tilde : (n, batch, x_dim) float64
        """
        x = check_observations(x, self.x_dim, "x")
        n, seed = check_count(n, "n"), check_seed(seed)
        chains = max(1, min(self.mcmc.chains, n))
        rows = max(1, _CHAINS_PER_CALL // chains)
        pieces = [np.empty((n, 0, self.x_dim))]
        for index, start in enumerate(range(0, len(x), rows)):
            y = torch.as_tensor((x[start : start + rows] - self.centre) / self.scale)
            with seeded(child_seed(seed, index)), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                draws = self._sampler.sample_batched(
                    (n,), x=y.float(), num_chains=chains, show_progress_bars=False
                )
            pieces.append(self.centre + self.scale * draws.double().numpy())
        return np.concatenate(pieces, axis=1)

    def sample(self, x_o: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Draw ``(n, theta_dim)`` at ``x_o`` ``(x_dim,)``: one NPE draw per denoised summary."""
        return self.sample_batched(check_observation(x_o, self.x_dim)[None], n, seed)[:, 0]

    def sample_batched(self, x: np.ndarray, n: int, seed: int) -> np.ndarray:
        """``n`` draws at every row of ``x`` ``(batch, x_dim)``: ``(n, batch, theta_dim)``."""
        denoised = self.denoise(x, n, child_seed(seed, 0))
        n, batch = denoised.shape[:2]
        if batch == 0:
            return np.empty((n, 0, self.theta_dim))
        flat = denoised.reshape(n * batch, self.x_dim)
        return self.npe.sample_batched(flat, 1, child_seed(seed, 1))[0].reshape(n, batch, -1)

    def log_prob(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Pairwise ``log (1/m) Σ_k q_NPE(theta_i | x_tilde_k)``, ``x_tilde`` denoised from x_i.

        The ``m = density_draws`` denoised draws of each distinct ``x`` use seed 0, so the value
        is deterministic. theta ``(b, p)``, x ``(b, d)`` -> ``(b,)``.
        """
        theta_t, _ = check_pairs(theta, x, self.prior)
        unique, inverse = np.unique(
            check_observations(x, self.x_dim, "x"), axis=0, return_inverse=True
        )
        denoised = self._density_draws(unique)[:, inverse.reshape(-1)]  # (m, b, d)
        m = denoised.shape[0]
        pairs = np.repeat(theta_t.double().numpy()[None], m, axis=0)  # (m, b, p)
        log_q = self.npe.log_prob(
            pairs.reshape(-1, self.theta_dim), denoised.reshape(-1, self.x_dim)
        )
        return (torch.logsumexp(torch.as_tensor(log_q).reshape(m, -1), 0) - np.log(m)).numpy()

    def _density_draws(self, unique: np.ndarray) -> np.ndarray:
        """The ``density_draws`` denoised draws ``(m, b, d)`` of the distinct rows ``unique``.

        Kept for the last set of rows: scoring asks for the density of many draws and of the
        true parameter at the same observations, and each MCMC run costs seconds.
        """
        key = unique.tobytes()
        if self._density_cache is None or self._density_cache[0] != key:
            self._density_cache = (key, self.denoise(unique, self.options.density_draws, 0))
        return self._density_cache[1]

    def log_prob_unnormalised(self, theta: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The same as :meth:`log_prob` (it is normalised)."""
        return self.log_prob(theta, x)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write NPE, ``q(x)`` and the z-scoring to ``path``, plain values and tensors only."""
        import sbi

        estimator = self.npe.posterior.posterior_estimator.state_dict()
        tensors = {f"npe.{k}": v for k, v in estimator.items()}
        tensors |= {f"q.{k}": v for k, v in self.flow.state_dict().items()}
        write_checkpoint(
            path,
            {
                "method": self.method,
                "settings": self.settings,
                "prior": self.prior.model_dump(mode="json"),
                "theta_dim": self.theta_dim,
                "x_dim": self.x_dim,
                "state_dict": {k: v.detach().cpu().clone() for k, v in tensors.items()},
                "training": self.training.to_dict(),
                "extra": {
                    "centre": self.centre.tolist(),
                    "scale": self.scale.tolist(),
                    "summary_training": self.summary_training.to_dict(),
                },
                **({} if self.fingerprint is None else {"fingerprint": self.fingerprint}),
                "versions": {"sbi": str(sbi.__version__), "torch": str(torch.__version__)},
            },
        )


class RNPEMethod(InferenceMethod):
    """RNPE (Ward et al. 2022): NPE plus ``q(x)`` and a spike-and-slab error model."""

    name: ClassVar[str] = "rnpe"
    description: ClassVar[str] = (
        "robust NPE (Ward et al. 2022): observations denoised by MCMC, NPE averaged over them"
    )
    amortised: ClassVar[bool] = False
    options_model: ClassVar[type[BaseModel] | None] = RNPEOptions

    def relevant_settings(self, settings: MethodSettings) -> BaseModel:
        """The network and its training (NPE's and q's), the error model and the sampler."""
        options = self.options(settings)
        assert options is not None
        return WithOptions(
            network=settings.network.model_dump(), options=options.model_dump(), mcmc=settings.mcmc
        )

    def train(
        self,
        theta: np.ndarray,
        x: np.ndarray,
        prior: Prior,
        settings: MethodSettings,
        *,
        seed: int,
        context: MethodContext,
    ) -> RNPEPosterior:
        """Train NPE on ``(theta, x)`` and ``q(x)`` on ``x`` ``(n, d)``."""
        theta_t, x_t = check_pairs(theta, x, prior)
        npe = train_npe(
            theta_t.double().numpy(),
            x_t.double().numpy(),
            prior,
            settings,
            seed=seed,
            progress=context.progress,
            checkpoint=context.checkpoint,
            checkpoint_every=context.checkpoint_every,
        )
        centre = x_t.double().numpy().mean(axis=0)
        scale = output_scale(x_t.double().numpy())
        z = torch.as_tensor((x_t.double().numpy() - centre) / scale, dtype=torch.float32)
        flow, info = _fit_summary_density(z, settings.network, child_seed(seed, 3))
        options = self.options(settings)
        assert isinstance(options, RNPEOptions)
        return RNPEPosterior(
            npe,
            flow,
            centre=centre,
            scale=scale,
            options=options,
            mcmc=settings.mcmc,
            settings=settings.model_dump(mode="json"),
            summary_training=info,
            fingerprint=None,
        )

    def load(
        self, payload: dict[str, Any], prior: Prior, path: Path, context: MethodContext
    ) -> RNPEPosterior:
        """Rebuild NPE and ``q(x)`` from their tensors in the file."""
        settings = read_settings(payload, path, MethodSettings)
        tensors = payload["state_dict"]
        npe_part = {k[4:]: v for k, v in tensors.items() if k.startswith("npe.")}
        npe = NPEMethod().load({**payload, "state_dict": npe_part}, prior, path, context)
        q_part = {k[2:]: v for k, v in tensors.items() if k.startswith("q.")}
        flow = rebuild_network(
            lambda _theta, x: _summary_flow(x.shape[1], settings.network),
            {**payload, "state_dict": q_part},
            path,
        )
        extra = payload["extra"]
        return RNPEPosterior(
            npe,
            flow,
            centre=np.asarray(extra["centre"]),
            scale=np.asarray(extra["scale"]),
            options=RNPEOptions.model_validate(settings.options.get(self.name, {})),
            mcmc=settings.mcmc,
            settings=payload["settings"],
            summary_training=TrainingInfo.from_dict(extra["summary_training"]),
            fingerprint=payload.get("fingerprint"),
        )
