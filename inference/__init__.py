"""Inference: train NPE posteriors, score them against the ground truth, keep the scores."""

from inference.checkpoint import POSTERIOR_FORMAT
from inference.errors import ResultFileError
from inference.metrics import c2st, nltp, sbc_ranks, sbc_uniformity_pvalues
from inference.npe import TrainedPosterior, train_npe
from inference.scores import SCORES_FORMAT, load_scores, save_scores, score_posterior
from inference.seeds import child_seed
from inference.settings import NPESettings
from inference.training import TrainingInfo

__all__ = [
    "NPESettings",
    "POSTERIOR_FORMAT",
    "ResultFileError",
    "SCORES_FORMAT",
    "TrainedPosterior",
    "TrainingInfo",
    "c2st",
    "child_seed",
    "load_scores",
    "nltp",
    "sbc_ranks",
    "sbc_uniformity_pvalues",
    "save_scores",
    "score_posterior",
    "train_npe",
]
