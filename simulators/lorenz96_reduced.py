"""One-scale Lorenz-96 with a polynomial closure of the fast scale: a reduced simulator.

The fast variables of :class:`simulators.lorenz96.Lorenz96` are replaced by a closure of their
coupling term ``U_k`` in the slow variable alone::

    dX_k/dt = -X_{k-1} (X_{k-2} - X_{k+1}) - X_k + F - p(X_k; F, h, c, b)
    p(X; theta) = sum_m sum_f A[m, f] X^m phi_f(z),   z = (F/10 - 1, h - 1, c/10 - 1, b/10 - 1)

where ``phi`` are the monomials of ``z`` up to a degree (``1, z_F, z_h, z_c, z_b, z_F^2,
z_F z_h, ...``, in :func:`closure_features`' order), so the closure follows the parameters the
two-scale model is run at. ``A`` (the ``closure`` setting, one row per power of X) defaults to
:data:`DEFAULT_CLOSURE`, fitted by :func:`fit_closure` to the two-scale model at its default
settings over its default prior (``benchmarks/fit_lorenz96_closure.py`` reproduces it); a single
row per power, e.g. ``closure=[[0.97], [0.99]]``, is a plain polynomial in X.

Parameter names, prior and output names are the two-scale model's, so it stands in for it.
``mean_Y`` is that of the mean fast variable the closure implies, ``Ybar_k = b U_k / (h c J)``;
``mean_Y2`` averages a second closure of the same form, ``q(X_k; theta)`` for
``mean_j Y_{j,k}^2`` (the ``y2_closure`` setting, default :data:`DEFAULT_Y2_CLOSURE`).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from simulators._lorenz96_core import integrate_one_scale
from simulators.base import Simulator
from simulators.errors import ConfigError
from simulators.lorenz96 import OUTPUT_NAMES, PARAMETER_NAMES, Lorenz96

__all__ = [
    "Lorenz96Reduced",
    "closure_features",
    "fit_closure",
    "DEFAULT_CLOSURE",
    "DEFAULT_Y2_CLOSURE",
]

_REFERENCE = np.array([10.0, 1.0, 10.0, 10.0])  # F, h, c, b at which z = 0
_N_FEATURES = {1: 0, 5: 1, 15: 2, 35: 3}  # number of monomials of 4 variables -> degree

# Fitted by fit_closure(target="U") and fit_closure(target="Y2") at the default settings (K=8,
# J=32, dt=0.005, spin-up 2, window 10, 256 prior draws, seed 0) in
# benchmarks/fit_lorenz96_closure.py; rows: powers X^0..X^3, columns: closure_features(order=2).
# fmt: off
DEFAULT_CLOSURE: tuple[tuple[float, ...], ...] = (
    (0.908489, 0.395093, 2.18841, 1.63333, -4.36252, -1.04913, 0.28214, 1.17112,
     -2.31122, -0.835806, 2.12799, -6.52947, -0.534255, -4.529, 9.36203),
    (1.88798, -0.628152, 2.71871, 2.21812, -3.97759, 0.53113, -0.638035, -0.516382,
     -0.319767, 0.322791, 2.17218, -2.63901, -0.0139353, -2.59894, 3.82904),
    (-0.220916, 0.298822, -0.500592, -0.496908, 0.866351, -0.127825, 0.411259, 0.315856,
     -0.195583, -0.0539032, -0.498639, 0.883219, -0.1379, 0.887707, -1.2555),
    (0.0073219, -0.0152314, 0.0244632, 0.0289937, -0.0488409, 0.000410484, -0.0282744, -0.0239056,
     0.0173495, 0.0020783, 0.0292064, -0.057519, 0.0150595, -0.0597156, 0.083096),
)
DEFAULT_Y2_CLOSURE: tuple[tuple[float, ...], ...] = (
    (0.00432408, 0.00969692, 0.000972357, -0.00728928, -0.000599226,
     0.00446514, 0.00346732, -0.017197, -0.00251439, -0.00781095,
     -0.00767868, 0.00505378, 0.0134108, 0.00365585, -0.00185716),
    (0.0053624, 0.000852723, 0.00780236, -0.00143233, -0.0155652,
     -0.000220898, 0.00162725, 0.000697268, -0.00322828, -0.0010936,
     -0.00367032, -0.0129354, -0.000855405, 0.00662701, 0.0221249),
    (0.00307147, 0.000462544, 0.00504509, -0.000206989, -0.00602339,
     -0.000184896, 0.000185588, 0.000835431, -0.00389489, 0.00191564,
     0.000691936, -0.00595997, -0.000169067, 0.00218695, 0.00631904),
    (-0.000173378, 5.75203e-05, -0.000390519, -5.1576e-05, 0.000479742,
     -9.40606e-05, 0.000124631, 4.34924e-05, 0.000339365, -0.000157654,
     -6.24478e-05, 0.000526812, 9.66061e-07, -0.000133762, -0.000676005),
)
# fmt: on


def closure_features(params: dict[str, np.ndarray], order: int) -> np.ndarray:
    """Monomials of the scaled parameters ``z`` up to ``order``, constant first.

    Parameters
    ----------
    params : dict with ``F, h, c, b``, each (batch,)
    order : int
        0 (constant only) to 3.

    Returns
    -------
    phi : (batch, n_features) float64, n_features = 1, 5, 15 or 35
    """
    z = np.stack([params[n] / r - 1.0 for n, r in zip(PARAMETER_NAMES, _REFERENCE, strict=True)])
    columns = [np.ones(z.shape[1])]
    for degree in range(1, order + 1):
        for combo in itertools.combinations_with_replacement(range(4), degree):
            column = z[combo[0]].copy()
            for i in combo[1:]:
                column *= z[i]
            columns.append(column)
    return np.stack(columns, axis=1)


def _closure_matrix(field: str, value: Any) -> np.ndarray:
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        matrix = np.empty(0)
    if matrix.ndim != 2 or matrix.shape[1] not in _N_FEATURES or not np.isfinite(matrix).all():
        raise ConfigError(
            f"lorenz96_reduced setting {field!r} must be finite rows (one per power of X) of "
            f"1, 5, 15 or 35 coefficients, got {value!r:.80} (shape {matrix.shape}); "
            f"e.g. {field}=[[0.97], [0.99]] for 0.97 + 0.99 X"
        )
    return matrix


def _coefficients(closure: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Per-sample polynomial coefficients ``(degree + 1, batch)``, summed in a fixed order."""
    out = np.zeros((closure.shape[0], phi.shape[0]))
    for m in range(closure.shape[0]):
        for f in range(closure.shape[1]):  # sequential, not BLAS: bytes must not depend on batch
            out[m] += closure[m, f] * phi[:, f]
    return out


def fit_closure(
    degree: int = 3,
    order: int = 2,
    n_theta: int = 256,
    seed: int = 0,
    every: int = 20,
    target: str = "U",
    **two_scale_settings: Any,
) -> list[list[float]]:
    """Fit a closure ``A`` by least squares of the target on ``X_k^m phi_f(z)``.

    Runs the two-scale model at ``n_theta`` draws from its prior (so ``inferred`` and ``prior``
    decide where the closure is fitted) and keeps one step in ``every`` of its averaging window.

    Parameters
    ----------
    degree : int
        Degree of the polynomial in ``X``.
    order : int
        Degree of the monomials in the parameters (0 to 3).
    n_theta : int
        Parameter draws; about 10 ms of two-scale simulation each at the default settings.
    seed : int
        Seeds the draws and the initial conditions.
    target : {"U", "Y2"}
        Fit the coupling term ``U_k`` (the ``closure``) or ``mean_j Y_{j,k}^2`` (the
        ``y2_closure``).
    **two_scale_settings
        Settings of :class:`~simulators.lorenz96.Lorenz96`.

    Returns
    -------
    closure : (degree + 1) lists of n_features floats, for ``Lorenz96Reduced(closure=...)``
    """
    if degree < 0 or order not in (0, 1, 2, 3) or n_theta < 1 or every < 1:
        raise ConfigError(
            f"fit_closure needs degree >= 0, order in 0..3, n_theta >= 1 and every >= 1, got "
            f"degree={degree}, order={order}, n_theta={n_theta}, every={every}"
        )
    if target not in ("U", "Y2"):
        raise ConfigError(f"fit_closure target must be 'U' or 'Y2', got {target!r}")
    two_scale = Lorenz96(**two_scale_settings)
    rng = np.random.default_rng(seed)
    theta = two_scale.prior.sample(rng, n_theta)
    seeds = rng.integers(0, 2**63, n_theta).astype(np.uint64)
    rows, targets = [], []
    for start in range(0, n_theta, two_scale.batch_size):
        part = slice(start, start + two_scale.batch_size)
        X, U, Y2 = two_scale.coupling_samples(theta[part], seeds[part], every=every)
        if target == "Y2":
            U = Y2
        phi = closure_features(two_scale.full_parameters(theta[part]), order)
        # X is (step, k, sample) flattened: repeat each sample's features over steps and k
        phi = np.tile(phi, (len(X) // len(phi), 1))
        keep = np.isfinite(X) & np.isfinite(U)
        rows.append(np.concatenate([phi[keep] * X[keep, None] ** m for m in range(degree + 1)], 1))
        targets.append(U[keep])
    design, target = np.concatenate(rows), np.concatenate(targets)
    solution = np.linalg.lstsq(design, target, rcond=None)[0]
    return solution.reshape(degree + 1, -1).tolist()


class Lorenz96Reduced(Simulator):
    """One-scale Lorenz-96 with a parameter-dependent polynomial closure (module docstring).

    Parameters
    ----------
    K, J, F, h, c, b, inferred, prior, dt, spinup, window, batch_size
        As :class:`~simulators.lorenz96.Lorenz96` (J only sets the implied Y statistics).
    closure : list of lists of float, optional
        ``A[m][f]``: row m multiplies ``X^m``, column f the f-th of :func:`closure_features`
        (1, 5, 15 or 35 columns for order 0 to 3). Default :data:`DEFAULT_CLOSURE`.
    y2_closure : list of lists of float, optional
        The same for ``mean_j Y_{j,k}^2``. Default :data:`DEFAULT_Y2_CLOSURE`.

    Notes
    -----
    Cost per sample at the default settings: 1.3-3.3 ms on this shared 2-core machine, 6-20x
    cheaper than the two-scale model in the same runs (``benchmarks/lorenz96_throughput.py``).
    ``benchmarks/fit_lorenz96_closure.py`` prints its error: median relative error of every
    statistic 4-11 % over 128 prior draws.
    """

    name = "lorenz96_reduced"

    def __init__(
        self,
        K: int = 8,
        J: int = 32,
        F: float = 10.0,
        h: float = 1.0,
        c: float = 10.0,
        b: float = 10.0,
        inferred: list[str] | tuple[str, ...] = PARAMETER_NAMES,
        prior: dict[str, dict[str, Any]] | None = None,
        dt: float = 0.005,
        spinup: float = 2.0,
        window: float = 10.0,
        batch_size: int = 128,
        closure: list[list[float]] | None = None,
        y2_closure: list[list[float]] | None = None,
    ) -> None:
        self._two_scale = Lorenz96(
            K=K, J=J, F=F, h=h, c=c, b=b, inferred=inferred, prior=prior,
            dt=dt, spinup=spinup, window=window, batch_size=batch_size,
        )  # fmt: skip
        self.closure = _closure_matrix("closure", DEFAULT_CLOSURE if closure is None else closure)
        self.y2_closure = _closure_matrix(
            "y2_closure", DEFAULT_Y2_CLOSURE if y2_closure is None else y2_closure
        )
        self.prior = self._two_scale.prior
        self.output_names = OUTPUT_NAMES

    @property
    def settings(self) -> dict[str, Any]:
        two_scale = self._two_scale.settings
        for key in ("backend", "torch_threads"):
            del two_scale[key]
        return {
            **two_scale,
            "closure": self.closure.tolist(),
            "y2_closure": self.y2_closure.tolist(),
        }

    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        sim = self._two_scale
        params = sim.full_parameters(theta)
        seeds = np.asarray(seeds, dtype=np.uint64)
        x = np.empty((len(seeds), len(OUTPUT_NAMES)))
        for start in range(0, len(seeds), sim.batch_size):
            rows = slice(start, start + sim.batch_size)
            part = {n: v[rows] for n, v in params.items()}
            X0 = sim.initial_state(seeds[rows])[0]
            coefficients, y2_coefficients = (
                _coefficients(m, closure_features(part, _N_FEATURES[m.shape[1]]))
                for m in (self.closure, self.y2_closure)
            )
            with np.errstate(divide="ignore", invalid="ignore"):
                y_per_u = part["b"] / (part["h"] * part["c"] * sim.J)
            x[rows] = integrate_one_scale(
                X0,
                part["F"],
                coefficients,
                y_per_u,
                y2_coefficients,
                dt=sim.dt,
                n_spinup=sim.n_spinup_steps,
                n_window=sim.n_window_steps,
            )
        return x
