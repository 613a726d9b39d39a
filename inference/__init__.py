"""Inference: train posteriors (NPE, NLE, NRE, MCMC on a likelihood), score them against the
ground truth, keep the scores."""

from inference.c2st import c2st
from inference.calibration import finite_pairs, hpd_coverage, ranks_from_draws, recovery, tarp
from inference.checkpoint import POSTERIOR_FORMAT
from inference.errors import ResultFileError
from inference.lc2st import LC2STResult, lc2st
from inference.methods import (
    InferenceMethod,
    MethodContext,
    available_methods,
    get_method,
    load_posterior,
    register_method,
    train_posterior,
    train_posterior_to,
)
from inference.metrics import nltp, sbc_ranks, sbc_uniformity_pvalues
from inference.misspecification import (
    detection_rate,
    logprob_misspecification,
    mmd_misspecification,
)
from inference.mmd import mmd, mmd_permutation_pvalue
from inference.npe import NPEPosterior, train_npe
from inference.observations import ObservationModel
from inference.posterior import Posterior
from inference.predictive import predictive_distance
from inference.reference import (
    EnsembleReference,
    ExactReference,
    Reference,
    train_reference_ensemble,
)
from inference.scores import (
    SCORES_FORMAT,
    load_scores,
    save_scores,
    score_posterior,
    stack_replicates,
)
from inference.seeds import child_seed
from inference.settings import MCMCSettings, MethodSettings, NPESettings
from inference.training import TrainingInfo
from inference.trend import fit_trend, score_trends

__all__ = [
    "EnsembleReference",
    "ExactReference",
    "LC2STResult",
    "NPESettings",
    "ObservationModel",
    "POSTERIOR_FORMAT",
    "Reference",
    "ResultFileError",
    "SCORES_FORMAT",
    "Posterior",
    "NPEPosterior",
    "InferenceMethod",
    "MethodContext",
    "MCMCSettings",
    "MethodSettings",
    "available_methods",
    "get_method",
    "load_posterior",
    "register_method",
    "train_posterior",
    "train_posterior_to",
    "TrainingInfo",
    "c2st",
    "child_seed",
    "detection_rate",
    "finite_pairs",
    "fit_trend",
    "hpd_coverage",
    "lc2st",
    "load_scores",
    "logprob_misspecification",
    "mmd",
    "mmd_misspecification",
    "mmd_permutation_pvalue",
    "nltp",
    "predictive_distance",
    "ranks_from_draws",
    "recovery",
    "sbc_ranks",
    "sbc_uniformity_pvalues",
    "save_scores",
    "score_posterior",
    "score_trends",
    "stack_replicates",
    "tarp",
    "train_npe",
    "train_reference_ensemble",
]
