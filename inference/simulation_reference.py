"""The ``simulation`` reference: a checked NPE ensemble trained on its own simulator campaign.

For a simulator with neither an exact posterior nor a likelihood, the reference posterior is
learned from simulations: :func:`train_simulation_reference` trains several NPE members (NSF by
default) with different seeds on pairs from a true-simulator campaign of its **own** (never the
training store of what it judges), and samples their equal mixture
(:class:`~inference.reference.EnsembleReference`, whose self-agreement is the noise floor).

Every member's training is checked before it is trusted, because one member that stopped early
ruins the mixture (a member at validation loss -0.63 against -2.1 and -2.3 for its siblings made a
two-moons reference 0.84 C2ST away from the truth). A member is *flagged* when it stopped at
``max_num_epochs`` without early stopping, or when its best validation loss (mean negative log
density per validation pair, lower is better) lies more than ``tolerance`` median absolute
deviations (MAD) above the members' median; the MAD is floored at ``min_spread`` nats so that
members agreeing to within a few hundredths do not flag each other. The loss rule needs three
members or more (with two, each is exactly one MAD from their median). A flagged member is
retrained once with another seed and judged against the same median and MAD; if still flagged it
is dropped. What happened to every training run is recorded in :class:`MemberCheck` records.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal, TypeVar, final

import numpy as np

from inference.errors import ReferenceRefused
from inference.npe import NPEPosterior, train_npe
from inference.reference import EnsembleReference
from inference.seeds import child_seed
from inference.settings import NPESettings
from simulators.errors import ConfigError
from simulators.prior import Prior

__all__ = [
    "BUDGET_FACTOR",
    "MIN_SPREAD",
    "Run",
    "MemberCheck",
    "SimulationReference",
    "TrainMember",
    "check_members",
    "flag_member",
    "member_seed",
    "record_member",
    "robust_spread",
    "train_simulation_reference",
]

MIN_SPREAD = 0.1
"""Default floor of the members' loss spread (MAD), in nats per validation pair."""

BUDGET_FACTOR = 10
"""Least ratio of the reference campaign's pairs to the study's training budget."""

T = TypeVar("T")

TrainMember = Callable[..., NPEPosterior]
"""``train_member(theta, x, prior, settings, *, seed, member, attempt) -> NPEPosterior``."""


@dataclass(frozen=True)
class MemberCheck:
    """One training run of one reference member and what the check made of it.

    Attributes
    ----------
    member : int
        The member's index (0-based).
    attempt : int
        0 for the first training run, 1 for the retraining.
    seed : int
        The training seed of this run.
    best_validation_loss : float
        Mean negative log density per validation pair of the kept weights.
    epochs : int
    converged : bool
        Whether training ended by early stopping (not at ``max_num_epochs``).
    status : {"kept", "retrained", "dropped"}
        ``kept``: this run is in the ensemble; ``retrained``: flagged, a retraining replaced it;
        ``dropped``: flagged on the retraining too, the member is left out.
    reason : str
        Why it was flagged (empty when kept).
    """

    member: int
    attempt: int
    seed: int
    best_validation_loss: float
    epochs: int
    converged: bool
    status: Literal["kept", "retrained", "dropped"]
    reason: str = ""


def flag_member(
    loss: float, converged: bool, centre: float, spread: float, tolerance: float
) -> str:
    """Why a member's training run is not trusted, or ``""`` if it is.

    Parameters
    ----------
    loss : float
        The run's best validation loss.
    converged : bool
    centre : float
        The members' median best validation loss.
    spread : float
        Their median absolute deviation, already floored (positive).
    tolerance : float
        Deviations above ``centre`` allowed, in units of ``spread``.

    Returns
    -------
    reason : str
    """
    reasons = []
    if not converged:
        reasons.append("stopped at max_num_epochs without early stopping (not converged)")
    if not np.isfinite(loss):
        reasons.append(f"best validation loss is {loss}")
    elif (loss - centre) / spread > tolerance:
        reasons.append(
            f"best validation loss {loss:.3f} is {(loss - centre) / spread:.1f} MADs "
            f"({spread:.3f}) above the members' median {centre:.3f} (tolerance {tolerance:g})"
        )
    return "; ".join(reasons)


def _default_train_member(
    theta: np.ndarray,
    x: np.ndarray,
    prior: Prior,
    settings: NPESettings,
    *,
    seed: int,
    member: int,
    attempt: int,
) -> NPEPosterior:
    # an unconverged member is reported in its MemberCheck; sbi's warning would say it twice
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*max_num_epochs.*", category=UserWarning)
        return train_npe(theta, x, prior, settings, seed=seed)


def _check_budget(n_pairs: int, study_budget: int | None) -> None:
    if study_budget is not None and n_pairs < BUDGET_FACTOR * study_budget:
        warnings.warn(
            f"the simulation reference has {n_pairs} pairs, less than {BUDGET_FACTOR}x the "
            f"study's training budget ({study_budget}); its error may be as large as the "
            f"errors it judges: simulate at least {BUDGET_FACTOR * study_budget} pairs for it",
            UserWarning,
            stacklevel=3,
        )


@final
class SimulationReference:
    """An equal mixture of checked NPE members trained on the reference's own campaign.

    Satisfies :class:`~inference.reference.Reference`; sampling and self-agreement are those of
    :class:`~inference.reference.EnsembleReference` over the kept members.

    Parameters
    ----------
    members : list of NPEPosterior
        The kept members, at least 2.
    checks : list of MemberCheck
        Every training run, kept or not.
    n_pairs : int
        Pairs of the campaign the members were trained on.
    seconds : float
        Wall-clock time of all training runs.
    """

    kind = "simulation"

    def __init__(
        self,
        members: list[NPEPosterior],
        checks: list[MemberCheck],
        *,
        n_pairs: int,
        seconds: float,
    ) -> None:
        self.ensemble = EnsembleReference(members)
        self.checks = list(checks)
        self.n_pairs = int(n_pairs)
        self.seconds = float(seconds)

    @property
    def members(self) -> list[NPEPosterior]:
        """The kept members."""
        return self.ensemble.members

    @property
    def dropped(self) -> list[MemberCheck]:
        """The records of dropped members (their last training run)."""
        return [check for check in self.checks if check.status == "dropped"]

    def sample(self, x_obs: np.ndarray, n: int, seed: int) -> np.ndarray:
        """Mixture draws ``(n_obs, n, p)`` at each row of ``x_obs`` ``(n_obs, d)``."""
        return self.ensemble.sample(x_obs, n, seed)

    def self_agreement(self, x_obs: np.ndarray, n: int, seed: int) -> np.ndarray:
        """C2ST between every pair of kept members, ``(n_obs, n_pairs)``."""
        return self.ensemble.self_agreement(x_obs, n, seed)


def _validate(members: int, tolerance: float, min_spread: float) -> None:
    if members < 2:
        raise ConfigError(
            f"members must be at least 2 (3 or more to check their losses), got {members}"
        )
    if not tolerance > 0 or not min_spread > 0:
        raise ConfigError(
            f"tolerance and min_spread must be positive, got {tolerance} and {min_spread}; "
            "the defaults are 3 and 0.1"
        )


def robust_spread(losses: list[float], min_spread: float) -> tuple[float, float]:
    """Median of the finite ``losses`` and their median absolute deviation, floored.

    Parameters
    ----------
    losses : list of float
        Best validation losses, one per member (non-finite ones are ignored).
    min_spread : float
        Floor of the deviation.

    Returns
    -------
    centre, spread : float
        ``spread >= min_spread``; ``centre`` is NaN when no loss is finite.
    """
    values = np.asarray(losses, dtype=np.float64)
    finite = values[np.isfinite(values)]
    if not len(finite):
        return float("nan"), float(min_spread)
    centre = float(np.median(finite))
    return centre, max(float(np.median(np.abs(finite - centre))), float(min_spread))


Run = tuple[int, int]  # one training run of the ensemble: (member, attempt)


def check_members(
    run_many: Callable[[list[Run]], list[tuple[T, MemberCheck]]],
    members: int,
    tolerance: float,
    min_spread: float,
) -> tuple[list[T], list[MemberCheck]]:
    """Train every member, retrain the flagged ones once, drop those flagged again.

    Parameters
    ----------
    run_many : callable
        ``run_many([(member, attempt), ...])`` trains those runs (in any order, e.g. as parallel
        tasks) and returns ``(trained, check)`` for each, in the order asked; ``trained`` is
        whatever the caller keeps (a posterior, or the file it was saved to).
    members, tolerance, min_spread
        As in :func:`train_simulation_reference`.

    Returns
    -------
    kept : list
        The ``trained`` of the kept runs, by member.
    checks : list of MemberCheck
        Every run, with its status.

    Raises
    ------
    ReferenceRefused
        If fewer than 2 members are kept.
    """
    first = run_many([(i, 0) for i in range(members)])
    centre, spread = robust_spread([check.best_validation_loss for _, check in first], min_spread)

    def reason_of(check: MemberCheck) -> str:
        return flag_member(check.best_validation_loss, check.converged, centre, spread, tolerance)

    flagged = [member for member, (_, check) in enumerate(first) if reason_of(check)]
    second = dict(zip(flagged, run_many([(member, 1) for member in flagged]), strict=True))
    kept: list[T] = []
    checks: list[MemberCheck] = []
    for member, (trained, check) in enumerate(first):
        if member in second:
            checks.append(replace(check, status="retrained", reason=reason_of(check)))
            trained, check = second[member]
        reason = reason_of(check)
        checks.append(replace(check, status="dropped", reason=reason) if reason else check)
        if not reason:
            kept.append(trained)
    if len(kept) < 2:
        failed = [f"member {c.member} (seed {c.seed}): {c.reason}" for c in checks if c.reason]
        raise ReferenceRefused(
            f"only {len(kept)} of {members} reference members passed the training check "
            f"(a simulation reference needs 2): "
            + "; ".join(failed)
            + ". Give the members more epochs (max_num_epochs), more pairs, or other settings",
            diagnostics=checks,
        )
    return kept, checks


def member_seed(seed: int, member: int, attempt: int) -> int:
    """The training seed of one run (a retraining's is ``child_seed(seed, member, 1)``)."""
    return child_seed(seed, member) if attempt == 0 else child_seed(seed, member, 1)


def record_member(member: int, attempt: int, seed: int, posterior: NPEPosterior) -> MemberCheck:
    """The check record of one finished training run (status ``kept`` until judged)."""
    info = posterior.training
    return MemberCheck(
        member, attempt, seed, float(info.best_validation_loss), info.epochs, info.converged, "kept"
    )


def train_simulation_reference(
    theta: np.ndarray,
    x: np.ndarray,
    prior: Prior,
    settings: NPESettings | None = None,
    *,
    seed: int,
    members: int = 3,
    tolerance: float = 3.0,
    min_spread: float = MIN_SPREAD,
    study_budget: int | None = None,
    train_member: TrainMember | None = None,
) -> SimulationReference:
    """Train a checked NPE ensemble on the reference's own true-simulator campaign.

    Budget: give it at least ``BUDGET_FACTOR`` (10) times the study's training budget
    (``budgets.train``) of pairs, so that its own error is well below the errors it judges. On
    two moons, 10,000 pairs and three members with ``NPESettings()`` were 0.518 and 0.523 C2ST
    from the exact posterior (mean over 3 observations, 2 seeds, each observation <= 0.55;
    about 6 minutes on one core); 3,000 pairs with 3-transform members, 0.525-0.552
    (``BENCHMARKS.md``).

    Parameters
    ----------
    theta : (n, p)
    x : (n, d)
        Valid pairs of a campaign simulated for the reference only; the caller guarantees they
        are not the store the judged posteriors were trained on.
    prior : Prior
    settings : NPESettings, optional
        Every member's network and training; ``NPESettings()`` (NSF) by default.
    seed : int
        Member ``i`` trains with ``child_seed(seed, i)``, its retraining with
        ``child_seed(seed, i, 1)``.
    members : int
        Members trained (at least 2; the loss check needs 3 or more).
    tolerance : float
        Median absolute deviations above the median loss that flag a member.
    min_spread : float
        Floor of the MAD, in nats per pair.
    study_budget : int, optional
        The study's training budget; a warning is given when ``n`` is below 10 times it.
    train_member : callable, optional
        ``train_member(theta, x, prior, settings, *, seed, member, attempt)`` trains one run;
        :func:`~inference.npe.train_npe` by default. A seam to train members differently (e.g.
        to test the check with a deliberately undertrained member).

    Returns
    -------
    SimulationReference
        With ``checks`` recording every training run.

    Raises
    ------
    ConfigError
        For bad arguments.
    ReferenceRefused
        If fewer than 2 members pass the check (``diagnostics`` holds the checks).
    """
    settings = NPESettings() if settings is None else settings
    train = _default_train_member if train_member is None else train_member
    _validate(members, tolerance, min_spread)
    _check_budget(len(theta), study_budget)
    start = time.perf_counter()

    def run(member: int, attempt: int) -> tuple[NPEPosterior, MemberCheck]:
        run_seed = member_seed(seed, member, attempt)
        posterior = train(theta, x, prior, settings, seed=run_seed, member=member, attempt=attempt)
        return posterior, record_member(member, attempt, run_seed, posterior)

    kept, checks = check_members(
        lambda runs: [run(*r) for r in runs], members, tolerance, min_spread
    )
    return SimulationReference(
        kept, checks, n_pairs=len(theta), seconds=time.perf_counter() - start
    )
