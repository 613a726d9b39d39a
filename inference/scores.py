"""Score a trained posterior against the ground truth, and keep the scores in Zarr.

:func:`score_posterior` gathers every metric of :mod:`inference.metrics` into one
``xarray.Dataset`` (format ``emustudy-scores/1``)::

    c2st       (observation,)        float64  C2ST accuracy against reference samples
    nltp       (test_pair,)          float64  -log q(theta_i | x_i)
    nltp_mean  ()                    float64  mean of nltp
    sbc_rank   (test_pair, param)    int64    rank of theta_i among n_sbc_samples draws
    sbc_pvalue (param,)              float64  KS p-value of rank uniformity

with integer coordinates ``observation`` and ``test_pair``, parameter names on ``param``, and
attributes recording the settings used. :func:`save_scores` writes it atomically; a crash never
leaves a half-written store at the destination.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from inference.errors import ResultFileError
from inference.metrics import C2ST_FOLDS, c2st, nltp, sbc_ranks, sbc_uniformity_pvalues
from inference.npe import TrainedPosterior
from inference.seeds import check_seed, child_seed
from simulators.errors import ConfigError

__all__ = ["SCORES_FORMAT", "score_posterior", "save_scores", "load_scores"]

SCORES_FORMAT = "emustudy-scores/1"

# Child-seed keys of the random steps of one scoring.
_POSTERIOR_DRAWS, _C2ST, _SBC, _SBC_JITTER = range(4)


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
) -> xr.Dataset:
    """Compute C2ST, NLTP and SBC for one trained posterior.

    Parameters
    ----------
    posterior : TrainedPosterior
    x_obs : (n_obs, n_outputs)
        Observations at which the posterior is compared with the reference.
    reference_samples : (n_obs, n_ref, n_params)
        Ground-truth posterior draws at each observation (e.g. from the exact posterior).
        C2ST uses the first ``n_posterior_samples`` of them, so ``n_ref`` must be at least that.
    theta_test : (N, n_params)
        Prior draws held out from training.
    x_test : (N, n_outputs)
        Outputs of the true simulator at ``theta_test``.
    n_posterior_samples : int
        Posterior draws per observation for C2ST.
    n_sbc_samples : int
        Posterior draws per test pair for the SBC ranks.
    seed : int
        Every random step (posterior draws, classifier, SBC draws, jitter) uses a child seed.

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
    x_obs = np.asarray(x_obs, dtype=np.float64)
    reference = np.asarray(reference_samples, dtype=np.float64)
    theta_test = np.asarray(theta_test, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
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
    if (
        theta_test.shape != (len(x_test), p)
        or x_test.ndim != 2
        or x_test.shape[1] != d
        or len(x_test) < 1
    ):
        raise ConfigError(
            f"theta_test must be (N, {p}) and x_test (N, {d}) with the same N >= 1, got "
            f"{theta_test.shape} and {x_test.shape}"
        )

    draws = posterior.sample_batched(x_obs, n_posterior_samples, child_seed(seed, _POSTERIOR_DRAWS))
    c2st_values = np.array(
        [
            c2st(reference[i, :n_posterior_samples], draws[:, i], child_seed(seed, _C2ST, i))
            for i in range(len(x_obs))
        ]
    )
    nltp_values = nltp(posterior, theta_test, x_test)
    ranks = sbc_ranks(posterior, theta_test, x_test, n_sbc_samples, child_seed(seed, _SBC))
    pvalues = sbc_uniformity_pvalues(ranks, n_sbc_samples, seed=child_seed(seed, _SBC_JITTER))

    attrs: dict[str, Any] = {
        "format": SCORES_FORMAT,
        "seed": seed,
        "n_posterior_samples": int(n_posterior_samples),
        "n_sbc_samples": int(n_sbc_samples),
        "c2st_classifier": "mlp",
        "c2st_folds": C2ST_FOLDS,
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
        {
            "c2st": ("observation", c2st_values),
            "nltp": ("test_pair", nltp_values),
            "nltp_mean": ((), float(np.mean(nltp_values))),
            "sbc_rank": (("test_pair", "param"), ranks),
            "sbc_pvalue": ("param", pvalues),
        },
        coords={
            "observation": np.arange(len(x_obs), dtype=np.int64),
            "test_pair": np.arange(len(x_test), dtype=np.int64),
            "param": np.array(list(posterior.prior.names), dtype=object),
        },
        attrs=attrs,
    )


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
