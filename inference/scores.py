"""Score a trained posterior against the ground truth, and keep the scores in Zarr.

:func:`score_posterior` gathers every score of one trained posterior (one replicate) into one
``xarray.Dataset`` (format ``emustudy-scores/1``)::

    c2st             (observation,)       C2ST accuracy against reference draws (0.5: identical)
    mmd              (observation,)       squared MMD against reference draws (0: identical)
    lc2st_statistic  (observation,)       local C2ST statistic (0: valid at this observation)
    lc2st_pvalue     (observation,)       its p-value (small: invalid at this observation)
    ppc_distance     (observation,)       true-simulator predictive distance (with a simulator)
    nltp             (test_pair,)         -log q(theta_i | x_i)
    nltp_mean        ()                   mean of nltp
    sbc_rank         (test_pair, param)   rank of theta_i among n_sbc_samples draws
    sbc_pvalue       (param,)             KS p-value of rank uniformity
    tarp_ecp         (alpha,)             TARP expected coverage curve
    tarp_atc         ()                   its signed area beyond 0.5 (< 0: overconfident)
    tarp_pvalue      ()                   KS p-value of TARP coverage uniformity
    hpd_coverage     (credibility,)       coverage of highest-density regions
    mean_error       (param,)             RMS error of the posterior mean
    contraction      (param,)             1 - posterior variance / prior variance
    n_invalid_test   ()                   test pairs dropped for non-finite values
    pair_draws       (draw, param)        posterior draws at the first observation
    reference_draws  (draw, param)        reference draws at the first observation

with integer coordinates ``observation`` and ``test_pair``, parameter names on ``param``, and
attributes recording the settings used. :func:`stack_replicates` stacks the replicates of one
level into ``level x replicate x ...``. :func:`save_scores` writes a Dataset atomically; a crash
never leaves a half-written store at the destination.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from inference.calibration import finite_pairs, hpd_coverage, ranks_from_draws, recovery, tarp
from inference.errors import ResultFileError
from inference.lc2st import lc2st
from inference.metrics import C2ST_FOLDS, c2st, nltp, sbc_uniformity_pvalues
from inference.mmd import mmd
from inference.npe import TrainedPosterior
from inference.observations import check_in_support, check_observations
from inference.predictive import predictive_distance
from inference.seeds import check_seed, child_seed
from simulators.base import Simulator
from simulators.errors import ConfigError

__all__ = ["SCORES_FORMAT", "score_posterior", "stack_replicates", "save_scores", "load_scores"]

SCORES_FORMAT = "emustudy-scores/1"
CREDIBILITY = np.linspace(0.05, 0.95, 19)
_PAIR_DRAWS = 500

# Child-seed keys of the random steps of one scoring.
_POSTERIOR_DRAWS, _C2ST, _SBC, _SBC_JITTER, _TARP, _LC2ST, _PPC, _PRIOR = range(8)


def score_posterior(
    posterior: TrainedPosterior,
    *,
    x_obs: np.ndarray,
    reference_samples: np.ndarray,
    theta_test: np.ndarray,
    x_test: np.ndarray,
    n_posterior_samples: int,
    n_sbc_samples: int,
    seed: int,
    simulator: Simulator | None = None,
    n_ppc_samples: int = 100,
    n_lc2st_null: int = 30,
) -> xr.Dataset:
    """Compute every score of one trained posterior.

    Parameters
    ----------
    posterior : TrainedPosterior
    x_obs : (n_obs, n_outputs)
        Observations at which the posterior is compared with the reference.
    reference_samples : (n_obs, n_ref, n_params)
        Reference posterior draws at each observation (exact, or from a reference ensemble).
        C2ST and MMD use the first ``n_posterior_samples``, so ``n_ref`` must be at least that.
    theta_test : (N, n_params)
        Prior draws held out from training.
    x_test : (N, n_outputs)
        Outputs of the true simulator at ``theta_test``; pairs with non-finite values are
        dropped and counted in ``n_invalid_test``.
    n_posterior_samples : int
        Posterior draws per observation for C2ST, MMD and L-C2ST.
    n_sbc_samples : int
        Posterior draws per test pair for SBC, TARP, HPD coverage and recovery.
    seed : int
        Every random step uses a child seed.
    simulator : Simulator, optional
        The true simulator; when given, ``ppc_distance`` is computed from ``n_ppc_samples``
        draws per observation.
    n_ppc_samples, n_lc2st_null : int

    Returns
    -------
    scores : xarray.Dataset
        See the module docstring.

    Raises
    ------
    ConfigError
        If shapes disagree with each other or with the posterior.
    """
    seed = check_seed(seed)
    p, d = posterior.theta_dim, posterior.x_dim
    x_obs = check_observations(x_obs, d, "x_obs")
    reference = np.asarray(reference_samples, dtype=np.float64)
    if (
        x_obs.ndim != 2
        or x_obs.shape[1] != d
        or reference.ndim != 3
        or reference.shape[::2] != (len(x_obs), p)
    ):
        raise ConfigError(
            f"x_obs must be (n_obs, {d}) and reference_samples (n_obs, n_ref, {p}), got "
            f"{x_obs.shape} and {reference.shape}; pass one block of reference draws per "
            "observation"
        )
    if reference.shape[1] < n_posterior_samples:
        raise ConfigError(
            f"reference_samples has {reference.shape[1]} draws per observation, fewer than "
            f"n_posterior_samples={n_posterior_samples}; draw more reference samples or lower "
            "n_posterior_samples"
        )
    theta_arr, x_arr = np.asarray(theta_test, np.float64), np.asarray(x_test, np.float64)
    if (
        theta_arr.ndim != 2
        or theta_arr.shape[1] != p
        or x_arr.ndim != 2
        or x_arr.shape[1] != d
        or len(theta_arr) != len(x_arr)
    ):
        raise ConfigError(
            f"theta_test must be (N, {p}) and x_test (N, {d}) with the same N >= 1, got "
            f"{theta_arr.shape} and {x_arr.shape}"
        )
    check_in_support(theta_arr, posterior.prior, "theta_test")
    theta_test, x_test, n_invalid = finite_pairs(theta_arr, x_arr)
    if len(x_test) < 20:
        raise ConfigError(
            f"only {len(x_test)} finite test pairs (of {len(x_arr)}); scoring needs at least 20, "
            "so simulate more test pairs"
        )

    draws = posterior.sample_batched(x_obs, n_posterior_samples, child_seed(seed, _POSTERIOR_DRAWS))
    c2st_values = np.array(
        [
            c2st(reference[i, :n_posterior_samples], draws[:, i], child_seed(seed, _C2ST, i))
            for i in range(len(x_obs))
        ]
    )
    mmd_values = np.array(
        [mmd(reference[i, :n_posterior_samples], draws[:, i]) for i in range(len(x_obs))]
    )
    nltp_values = nltp(posterior, theta_test, x_test)
    test_draws = posterior.sample_batched(x_test, n_sbc_samples, child_seed(seed, _SBC))
    ranks = ranks_from_draws(test_draws, theta_test)
    pvalues = sbc_uniformity_pvalues(ranks, n_sbc_samples, seed=child_seed(seed, _SBC_JITTER))
    tarp_result = tarp(test_draws, theta_test, child_seed(seed, _TARP))
    coverage = hpd_coverage(posterior, test_draws, theta_test, x_test, CREDIBILITY)
    prior_draws = posterior.prior.sample(np.random.default_rng(child_seed(seed, _PRIOR)), 100_000)
    recovered = recovery(test_draws, theta_test, prior_draws.var(axis=0))
    local = lc2st(
        theta_test,
        x_test,
        test_draws[0],
        x_obs,
        draws,
        child_seed(seed, _LC2ST),
        n_null=n_lc2st_null,
    )

    variables: dict[str, Any] = {
        "c2st": ("observation", c2st_values),
        "mmd": ("observation", mmd_values),
        "lc2st_statistic": ("observation", local.statistic),
        "lc2st_pvalue": ("observation", local.pvalue),
        "nltp": ("test_pair", nltp_values),
        "nltp_mean": ((), float(np.mean(nltp_values))),
        "sbc_rank": (("test_pair", "param"), ranks),
        "sbc_pvalue": ("param", pvalues),
        "tarp_ecp": ("alpha", tarp_result["ecp"]),
        "tarp_atc": ((), tarp_result["atc"]),
        "tarp_pvalue": ((), tarp_result["ks_pvalue"]),
        "hpd_coverage": ("credibility", coverage),
        "mean_error": ("param", recovered["mean_error"]),
        "contraction": ("param", recovered["contraction"]),
        "n_invalid_test": ((), n_invalid),
        # a sample at the first observation, for the report's pair plot
        "pair_draws": (("draw", "param"), draws[:_PAIR_DRAWS, 0]),
        "reference_draws": (("draw", "param"), reference[0, : min(_PAIR_DRAWS, len(draws))]),
    }
    if simulator is not None:
        n_ppc = min(n_ppc_samples, n_posterior_samples)
        variables["ppc_distance"] = (
            "observation",
            predictive_distance(
                simulator, draws[:n_ppc], x_obs, x_test.std(axis=0), child_seed(seed, _PPC)
            ),
        )
    attrs: dict[str, Any] = {
        "format": SCORES_FORMAT,
        "seed": seed,
        "n_posterior_samples": int(n_posterior_samples),
        "n_sbc_samples": int(n_sbc_samples),
        "c2st_classifier": "batched torch MLP (2 x 10 * n_params ReLU), early stopping",
        "c2st_folds": C2ST_FOLDS,
        "mmd_kernel": "Gaussian, median-heuristic bandwidth, z-scored by the reference draws",
        "lc2st_null_trials": int(n_lc2st_null),
        "sbc_test": "Kolmogorov-Smirnov on jittered ranks (rank + U(0,1)) / (n_sbc_samples + 1)",
        "npe_settings": posterior.settings.model_dump(),
        "prior": posterior.prior.model_dump(mode="json"),
        "training": {
            key: value
            for key, value in posterior.training.to_dict().items()
            if key not in ("training_loss", "validation_loss")
        },
    }
    return xr.Dataset(
        variables,
        coords={
            "observation": np.arange(len(x_obs), dtype=np.int64),
            "test_pair": np.arange(len(x_test), dtype=np.int64),
            "param": np.array(list(posterior.prior.names), dtype=object),
            "alpha": tarp_result["alpha"],
            "credibility": CREDIBILITY,
        },
        attrs=attrs,
    )


def stack_replicates(replicates: list[xr.Dataset], level: str) -> xr.Dataset:
    """Stack the scores of one level's replicates into ``level x replicate x ...``.

    Parameters
    ----------
    replicates : list of xarray.Dataset
        From :func:`score_posterior`, one per training seed, scored on the same observations
        and test pairs.
    level : str

    Returns
    -------
    scores : xarray.Dataset
        Every variable gains leading ``level`` (size 1) and ``replicate`` dims; the attrs are
        the first replicate's, with ``level`` and the per-replicate ``seeds`` and ``training``.
    """
    if not replicates:
        raise ConfigError("stack_replicates needs at least one replicate")
    stacked = xr.concat(replicates, dim="replicate", combine_attrs="override")
    stacked = stacked.assign_coords(replicate=np.arange(len(replicates), dtype=np.int64))
    stacked = stacked.expand_dims(level=[level])
    stacked.attrs.update(
        level=level,
        seeds=[int(r.attrs["seed"]) for r in replicates],
        training=[r.attrs["training"] for r in replicates],
    )
    return stacked


def _is_scores_store(path: Path) -> bool:
    try:
        with xr.open_zarr(path, consolidated=False, chunks=None) as ds:
            return ds.attrs.get("format") == SCORES_FORMAT
    except Exception:
        return False


def save_scores(ds: xr.Dataset, path: str | os.PathLike[str]) -> None:
    """Write scores to a Zarr store at ``path``, replacing an older score store there.

    The store is written to a hidden temporary folder beside ``path`` and renamed into place,
    so a crash never leaves a partly written store at ``path``: it holds the previous complete
    store or the new complete one (when replacing, the old store is first renamed aside, so for
    an instant between the two renames ``path`` is absent).

    Raises
    ------
    ResultFileError
        If ``path`` exists and is not an emustudy score store (it is left untouched).
    """
    path = Path(path)
    if path.exists() and not _is_scores_store(path):
        raise ResultFileError(
            f"{path} exists and is not an emustudy score store; nothing was written. "
            "Choose another path, or delete it yourself if it is disposable."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    temporary = path.parent / f".{path.name}.{token}.tmp"
    old = path.parent / f".{path.name}.{token}.old"
    try:
        with warnings.catch_warnings():
            # string coordinates (level, parameter names) have no Zarr v3 spec yet; harmless
            warnings.filterwarnings("ignore", message=".*does not have a Zarr V3 specification.*")
            ds.to_zarr(temporary, mode="w", consolidated=False)
        if path.exists():
            os.replace(path, old)
            try:
                os.replace(temporary, path)
            except BaseException:
                os.replace(old, path)
                raise
        else:
            os.replace(temporary, path)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def load_scores(path: str | os.PathLike[str]) -> xr.Dataset:
    """Read a score store written by :func:`save_scores` fully into memory.

    Raises
    ------
    ResultFileError
        If ``path`` is missing, unreadable, or not an emustudy score store.
    """
    path = Path(path)
    if not path.exists():
        raise ResultFileError(f"no score store at {path}; compute it with score_posterior first")
    try:
        ds = xr.open_zarr(path, consolidated=False, chunks=None).load()
    except Exception as err:
        raise ResultFileError(
            f"{path} is not a readable Zarr store ({type(err).__name__}: {err}); "
            "recompute the scores"
        ) from err
    if ds.attrs.get("format") != SCORES_FORMAT:
        raise ResultFileError(
            f"{path} has format {ds.attrs.get('format')!r}, expected {SCORES_FORMAT!r}; "
            "it is not an emustudy score store. Recompute the scores."
        )
    return ds
