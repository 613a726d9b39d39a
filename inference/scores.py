"""Score a posterior against the ground truth, and keep the scores in Zarr.

:func:`score_posterior` computes every score of :data:`inference.score_table.SCORES` that applies
to one posterior (one replicate) into one ``xarray.Dataset`` (format ``emustudy-scores/1``), with
integer coordinates ``observation`` and ``test_pair``, parameter names on ``param``, and
attributes recording the method, its settings and the scoring settings. Scores a posterior
cannot have are left out (NLTP for a posterior without a normalised density, the predictive
distance without a simulator). :func:`stack_replicates` stacks the replicates of one level into
``level x replicate x ...``. :func:`save_scores` writes a Dataset atomically; a crash never
leaves a half-written store at the destination.

A cluster scores one posterior in blocks (:mod:`inference.score_blocks`) from
:func:`scoring_context`; :func:`score_posterior` runs the same blocks here, one of each, so both
give the same scores.
"""

from __future__ import annotations

import os
import shutil
import uuid
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from inference.calibration import finite_pairs
from inference.errors import ResultFileError
from inference.observations import check_in_support, check_observations
from inference.posterior import Posterior
from inference.score_blocks import (
    SCORES_FORMAT,
    finish_scores,
    score_observations,
    score_pairs,
)
from inference.scoring_context import ScoringContext
from inference.seeds import check_seed
from simulators.base import Simulator
from simulators.errors import ConfigError

__all__ = [
    "SCORES_FORMAT",
    "finish_scores",
    "load_scores",
    "save_scores",
    "score_posterior",
    "scored_pairs",
    "scoring_context",
    "stack_replicates",
]


def score_posterior(
    posterior: Posterior,
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
    max_test_pairs: int | None = None,
    truth_samples: np.ndarray | None = None,
) -> xr.Dataset:
    """Compute every score of the score table that applies to one posterior.

    Parameters
    ----------
    posterior : Posterior
    x_obs : (n_obs, n_outputs)
        Observations at which the posterior is compared with the reference.
    reference_samples : (n_obs, n_ref, n_params)
        Reference posterior draws at each observation (exact, or from a reference ensemble).
        C2ST and MMD use the first ``n_posterior_samples``, so ``n_ref`` must be at least that.
    theta_test : (N, n_params)
        Prior draws held out from training.
    x_test : (N, n_outputs)
        True-simulator outputs at ``theta_test``; non-finite pairs are counted and dropped.
    n_posterior_samples : int
        Posterior draws per observation for C2ST, MMD and L-C2ST.
    n_sbc_samples : int
        Posterior draws per test pair for SBC, TARP, HPD coverage and recovery.
    seed : int
        Every random step uses a child seed.
    simulator : Simulator, optional
        The true simulator, for ``ppc_distance`` from ``n_ppc_samples`` draws per observation.
    n_ppc_samples, n_lc2st_null : int
    max_test_pairs : int, optional
        Use only the first this many finite test pairs (MCMC-sampled posteriors).
    truth_samples : (n_obs, n_truth, n_params), optional
        Exact posterior draws beside another reference: ``c2st_vs_truth`` checks that reference.

    Returns
    -------
    scores : xarray.Dataset
        One variable per applicable entry of :data:`~inference.score_table.SCORES`.

    Raises
    ------
    ConfigError
        If shapes disagree with each other or with the posterior.
    """
    context = scoring_context(
        posterior,
        x_obs=x_obs,
        reference_samples=reference_samples,
        theta_test=theta_test,
        x_test=x_test,
        n_posterior_samples=n_posterior_samples,
        n_sbc_samples=n_sbc_samples,
        seed=seed,
        simulator=simulator,
        n_ppc_samples=n_ppc_samples,
        n_lc2st_null=n_lc2st_null,
        max_test_pairs=max_test_pairs,
        truth_samples=truth_samples,
    )
    # the blocks a cluster scores as separate tasks, here one after the other (one of each)
    observations = [score_observations(context, 0, len(context.x_obs))]
    pairs = [score_pairs(context, 0, len(context.theta_test))]
    return finish_scores(context, observations, pairs)


def scoring_context(
    posterior: Posterior,
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
    max_test_pairs: int | None = None,
    truth_samples: np.ndarray | None = None,
) -> ScoringContext:
    """The checked inputs of :func:`score_posterior` (same parameters), for scoring in blocks:
    :func:`~inference.score_blocks.score_observations` and
    :func:`~inference.score_blocks.score_pairs` on parts of it, then :func:`finish_scores`.

    Raises
    ------
    ConfigError
        If shapes disagree with each other or with the posterior.
    """
    context = _context(
        posterior, x_obs, reference_samples, theta_test, x_test, n_posterior_samples, max_test_pairs
    )
    context.n_sbc_samples, context.seed = n_sbc_samples, check_seed(seed)
    context.simulator, context.n_ppc_samples, context.n_lc2st_null = (
        simulator,
        n_ppc_samples,
        n_lc2st_null,
    )
    context.truth = _checked_truth(truth_samples, len(context.x_obs), n_posterior_samples)
    return context


def _checked_truth(truth: np.ndarray | None, n_obs: int, n: int) -> np.ndarray | None:
    if truth is None:
        return None
    truth = np.asarray(truth, dtype=np.float64)
    if truth.ndim != 3 or len(truth) != n_obs or truth.shape[1] < n:
        raise ConfigError(f"truth_samples must be (n_obs={n_obs}, >= {n}, p), got {truth.shape}")
    return truth


def _context(
    posterior: Posterior,
    x_obs: np.ndarray,
    reference_samples: np.ndarray,
    theta_test: np.ndarray,
    x_test: np.ndarray,
    n_posterior_samples: int,
    max_test_pairs: int | None,
) -> ScoringContext:
    """Check the inputs against each other and the posterior; drop non-finite test pairs."""
    p, d = posterior.theta_dim, posterior.x_dim
    x_obs = check_observations(x_obs, d, "x_obs")
    reference = np.asarray(reference_samples, dtype=np.float64)
    if reference.ndim != 3 or reference.shape[::2] != (len(x_obs), p):
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
    theta_fin, x_fin, n_invalid = finite_pairs(theta_arr, x_arr)
    if len(x_fin) < 20:
        raise ConfigError(
            f"only {len(x_fin)} finite test pairs (of {len(x_arr)}); scoring needs at least 20, "
            "so simulate more test pairs"
        )
    n_scored = scored_pairs(len(x_fin), max_test_pairs)
    theta_fin, x_fin = theta_fin[:n_scored], x_fin[:n_scored]
    return ScoringContext(
        posterior=posterior,
        x_obs=x_obs,
        reference=reference,
        theta_test=theta_fin,
        x_test=x_fin,
        n_invalid=int(n_invalid),
        n_posterior_samples=int(n_posterior_samples),
        n_sbc_samples=0,
        seed=0,
    )


def scored_pairs(n_finite: int, max_test_pairs: int | None) -> int:
    """How many of ``n_finite`` finite test pairs are scored: all, or the first
    ``max(20, max_test_pairs)`` (MCMC-sampled posteriors)."""
    return n_finite if max_test_pairs is None else min(n_finite, max(20, max_test_pairs))


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
