"""The two-scale Lorenz-96 model (Lorenz 1996), the climate test bed of emulation studies.

``K`` slow variables ``X_k`` each drive ``J`` fast variables ``Y_{j,k}`` (indices cyclic; the
fast variables form one ring of length ``J K`` in which ``Y_{J,k}`` is followed by ``Y_{0,k+1}``)::

    dX_k/dt     = -X_{k-1} (X_{k-2} - X_{k+1}) - X_k + F - U_k,   U_k = (h c / b) sum_j Y_{j,k}
    dY_{j,k}/dt = -c b Y_{j+1,k} (Y_{j+2,k} - Y_{j-1,k}) - c Y_{j,k} + (h c / b) X_k

integrated by RK4 from random initial conditions drawn from the per-sample seed
(``X_k ~ N(0, 1)``, ``Y_{j,k} ~ N(0, 0.1^2)``). After a discarded spin-up, every step of the
averaging window contributes to the time averages (``<.>``, also averaged over ``k``) that form
the output, as in calibrate-emulate-sample studies (Schneider et al. 2017)::

    mean_X  = <X_k>           mean_X2 = <X_k^2>
    mean_U  = <U_k>           mean_U2 = <U_k^2>          mean_XU = <X_k U_k>
    mean_Y  = <Y_{j,k}>       mean_Y2 = <Y_{j,k}^2>      (also averaged over j)

The integrator itself lives in :mod:`simulators._lorenz96_core`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from simulators._lorenz96_core import integrate_two_scale, validate_settings
from simulators._prior_settings import prior_from_settings
from simulators.base import Simulator
from simulators.errors import ConfigError

__all__ = ["Lorenz96", "PARAMETER_NAMES", "OUTPUT_NAMES", "DEFAULT_PRIOR"]

PARAMETER_NAMES = ("F", "h", "c", "b")
OUTPUT_NAMES = ("mean_X", "mean_X2", "mean_U", "mean_U2", "mean_XU", "mean_Y", "mean_Y2")
DEFAULT_PRIOR: dict[str, dict[str, Any]] = {
    "F": {"distribution": "uniform", "low": 5.0, "high": 15.0},
    "h": {"distribution": "uniform", "low": 0.5, "high": 1.5},
    "c": {"distribution": "uniform", "low": 5.0, "high": 15.0},
    "b": {"distribution": "uniform", "low": 5.0, "high": 15.0},
}


@contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Lorenz96(Simulator):
    """Two-scale Lorenz-96 with time-averaged statistics as output (see the module docstring).

    Parameters
    ----------
    K, J : int
        Slow variables, and fast variables per slow one (8 and 32 as in Wilks 2005).
    F, h, c, b : float
        Forcing, coupling, time-scale ratio and amplitude ratio; used for those not inferred.
    inferred : list of str
        Which of ``F, h, c, b`` are theta's columns (all four by default, as in Schneider et
        al. 2017).
    prior : dict, optional
        Prior changes per inferred name (a spec with ``distribution`` replaces the default,
        bare ``low``/``high`` move its bounds); default uniform boxes
        F in [5, 15], h in [0.5, 1.5], c in [5, 15], b in [5, 15].
    dt, spinup, window : float
        RK4 step, discarded spin-up and averaging window, in model time units.
    backend : {"numpy", "torch"}
        ``torch`` runs the same float64 algorithm with torch tensors on the CPU; both give the
        same bytes whatever the batch.
    batch_size : int
        Samples integrated together; bounds memory (``~ 100 * J * K * batch_size`` bytes).
        64 to 128 ran fastest here (the arrays stay in cache); 256 was 15-25 % slower.
    torch_threads : int
        Intra-op threads of the torch backend while it integrates (restored afterwards); 1 is
        fastest here: on a busy 2-core machine two threads ran 4x slower than one.

    Notes
    -----
    Cost per sample at the default settings (K=8, J=32, 2,400 RK4 steps), measured by
    ``benchmarks/lorenz96_throughput.py`` on this 2-core machine while other jobs shared it
    (figures varied up to 2x between runs): 19 ms in numpy at batch 128 (52 samples/s), 27 ms
    at batch 256, 180-440 ms one sample at a time, 29-43 ms with the torch backend (float64,
    one thread). On a quiet machine expect about twice as fast (FACTS.md: ~107 samples/s for
    2,000 steps). Every row of the default prior box integrates without blowing up; rows
    that do blow up (e.g. a larger ``dt``) come out non-finite.
    """

    name = "lorenz96"

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
        backend: str = "numpy",
        batch_size: int = 128,
        torch_threads: int = 1,
    ) -> None:
        validate_settings("lorenz96", K=K, J=J, dt=dt, spinup=spinup, window=window)
        if backend not in ("numpy", "torch"):
            raise ConfigError(
                f"lorenz96 setting 'backend' must be 'numpy' or 'torch', got {backend!r}"
            )
        for field, value in (("batch_size", batch_size), ("torch_threads", torch_threads)):
            if int(value) < 1:
                raise ConfigError(f"lorenz96 setting {field!r} must be >= 1, got {value}")
        self.K, self.J = int(K), int(J)
        self.fixed = {"F": float(F), "h": float(h), "c": float(c), "b": float(b)}
        self.inferred = tuple(inferred)
        self._prior_overrides = {k: dict(v) for k, v in (prior or {}).items()}
        self.prior = prior_from_settings(
            "lorenz96", self.inferred, self._prior_overrides, DEFAULT_PRIOR
        )
        self.dt, self.spinup, self.window = float(dt), float(spinup), float(window)
        self.backend, self.batch_size = backend, int(batch_size)
        self.torch_threads = int(torch_threads)
        self.output_names = OUTPUT_NAMES

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "K": self.K,
            "J": self.J,
            **self.fixed,
            "inferred": list(self.inferred),
            "prior": self._prior_overrides,
            "dt": self.dt,
            "spinup": self.spinup,
            "window": self.window,
            "backend": self.backend,
            "batch_size": self.batch_size,
            "torch_threads": self.torch_threads,
        }

    @property
    def n_spinup_steps(self) -> int:
        """RK4 steps discarded before averaging."""
        return int(round(self.spinup / self.dt))

    @property
    def n_window_steps(self) -> int:
        """RK4 steps averaged over."""
        return max(1, int(round(self.window / self.dt)))

    def full_parameters(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        """Per-sample ``F, h, c, b`` from theta's inferred columns and the fixed settings.

        Parameters
        ----------
        theta : (batch, n_inferred)

        Returns
        -------
        dict of name -> (batch,) float64
        """
        theta = np.asarray(theta, dtype=np.float64)
        if theta.ndim != 2 or theta.shape[1] != len(self.inferred):
            raise ConfigError(
                f"lorenz96 theta must have shape (batch, {len(self.inferred)}) for inferred "
                f"{list(self.inferred)}, got {theta.shape}"
            )
        out = {n: np.full(len(theta), v) for n, v in self.fixed.items()}
        for i, name in enumerate(self.inferred):
            out[name] = theta[:, i].copy()
        return out

    def initial_state(self, seeds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Random initial conditions from the per-sample seeds.

        Returns
        -------
        X0 : (K, batch) float64
        Y0 : (J, K, batch) float64
        """
        X0 = np.empty((self.K, len(seeds)))
        Y0 = np.empty((self.J, self.K, len(seeds)))
        for i, seed in enumerate(seeds):
            rng = np.random.default_rng(int(seed))
            X0[:, i] = rng.standard_normal(self.K)
            Y0[:, :, i] = 0.1 * rng.standard_normal((self.J, self.K))
        return X0, Y0

    def simulate(self, theta: np.ndarray, seeds: np.ndarray) -> np.ndarray:
        params = self.full_parameters(theta)
        seeds = np.asarray(seeds, dtype=np.uint64)
        x = np.empty((len(seeds), len(OUTPUT_NAMES)))
        with _torch_threads(self.torch_threads if self.backend == "torch" else None):
            self._simulate_into(x, params, seeds)
        return x

    def _simulate_into(
        self, x: np.ndarray, params: dict[str, np.ndarray], seeds: np.ndarray
    ) -> None:
        for start in range(0, len(seeds), self.batch_size):
            rows = slice(start, start + self.batch_size)
            X0, Y0 = self.initial_state(seeds[rows])
            x[rows] = integrate_two_scale(
                X0,
                Y0,
                {n: v[rows] for n, v in params.items()},
                dt=self.dt,
                n_spinup=self.n_spinup_steps,
                n_window=self.n_window_steps,
                backend=self.backend,
            )

    def coupling_samples(
        self, theta: np.ndarray, seeds: np.ndarray, every: int = 10
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``X_k``, ``U_k`` and ``mean_j Y_{j,k}^2`` along the averaging window, for closures.

        Parameters
        ----------
        theta : (batch, n_inferred)
        seeds : (batch,) uint64
        every : int
            Keep one step in ``every``.

        Returns
        -------
        X, U, Y2 : (n_kept * K * batch,) float64
            Ordered by kept step, then k, then sample.
        """
        params = self.full_parameters(theta)
        X0, Y0 = self.initial_state(np.asarray(seeds, dtype=np.uint64))
        kept_X: list[np.ndarray] = []
        kept_U: list[np.ndarray] = []
        kept_Y2: list[np.ndarray] = []

        def keep(step: int, X: np.ndarray, U: np.ndarray, S: np.ndarray) -> None:
            if step % every == 0:
                kept_X.append(np.array(X, dtype=np.float64).ravel())
                kept_U.append(np.array(U, dtype=np.float64).ravel())
                kept_Y2.append(np.array(S, dtype=np.float64).ravel() / self.J)

        integrate_two_scale(
            X0,
            Y0,
            params,
            dt=self.dt,
            n_spinup=self.n_spinup_steps,
            n_window=self.n_window_steps,
            backend="numpy",
            on_step=keep,
        )
        if not kept_X:
            return np.empty(0), np.empty(0), np.empty(0)
        return np.concatenate(kept_X), np.concatenate(kept_U), np.concatenate(kept_Y2)
