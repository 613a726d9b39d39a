"""RK4 integrators of the two-scale and one-scale Lorenz-96 models, vectorised over a batch.

Arrays are laid out ``(state, batch)`` (2-3x faster than ``(batch, state)`` here), the fast
variables as ``(J, K, batch)``, in preallocated buffers padded with ghost rows so that the
cyclic neighbours are plain slices. Every operation is elementwise along the batch, and sums
run over leading axes only (sequential adds), so a row's bytes do not depend on the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from simulators.errors import ConfigError

__all__ = ["validate_settings", "integrate_two_scale", "integrate_one_scale", "N_STATS"]

N_STATS = 7  # mean_X, mean_X2, mean_U, mean_U2, mean_XU, mean_Y, mean_Y2


class _NumpyOps:
    """The few in-place operations the integrators need, in numpy."""

    float64 = np.float64

    @staticmethod
    def zeros(shape: tuple[int, ...]) -> np.ndarray:
        return np.zeros(shape)

    @staticmethod
    def asarray(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a, dtype=np.float64)

    @staticmethod
    def to_numpy(a: np.ndarray) -> np.ndarray:
        return np.asarray(a)

    add, sub, mul = np.add, np.subtract, np.multiply

    @staticmethod
    def sum0(a: np.ndarray, out: np.ndarray) -> None:
        np.add.reduce(a, axis=0, out=out)

    @staticmethod
    def copy(dst: np.ndarray, src: np.ndarray) -> None:
        np.copyto(dst, src)


class _TorchOps:
    """The same operations in torch (float64, CPU)."""

    def __init__(self) -> None:
        import torch

        self.torch = torch

    def zeros(self, shape: tuple[int, ...]) -> Any:
        return self.torch.zeros(shape, dtype=self.torch.float64)

    def asarray(self, a: np.ndarray) -> Any:
        return self.torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64)).clone()

    @staticmethod
    def to_numpy(a: Any) -> np.ndarray:
        return a.numpy()

    def add(self, a: Any, b: Any, out: Any) -> None:
        self.torch.add(a, b, out=out)

    def sub(self, a: Any, b: Any, out: Any) -> None:
        self.torch.sub(a, b, out=out)

    def mul(self, a: Any, b: Any, out: Any) -> None:
        self.torch.mul(a, b, out=out)

    def sum0(self, a: Any, out: Any) -> None:
        self.torch.sum(a, dim=0, out=out)

    @staticmethod
    def copy(dst: Any, src: Any) -> None:
        dst.copy_(src)


def _ops(backend: str) -> Any:
    return _TorchOps() if backend == "torch" else _NumpyOps()


def validate_settings(model: str, **values: Any) -> None:
    """Raise :class:`ConfigError` for impossible ``K``, ``J``, ``dt``, ``spinup`` or ``window``."""
    rules = {
        "K": (lambda v: int(v) == v and v >= 4, "an integer >= 4 (the advection term needs it)"),
        "J": (lambda v: int(v) == v and v >= 2, "an integer >= 2"),
        "dt": (lambda v: math.isfinite(v) and 0 < v <= 0.1, "in (0, 0.1] (RK4 is unstable above)"),
        "spinup": (lambda v: math.isfinite(v) and v >= 0, "finite and >= 0"),
        "window": (lambda v: math.isfinite(v) and v > 0, "finite and > 0"),
    }
    for field, value in values.items():
        check, allowed = rules[field]
        try:
            ok = bool(check(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"{model} setting {field!r} must be {allowed}, got {value!r}")
    if "window" in values and "dt" in values and values["window"] < values["dt"]:
        raise ConfigError(
            f"{model} setting 'window'={values['window']} is shorter than one step "
            f"dt={values['dt']}; make the window at least dt"
        )


def _fill_x(ops: Any, Xp: Any, K: int) -> None:
    # interior X_k sits at row k + 2; ghosts X_{-2}, X_{-1} at rows 0, 1 and X_K at row K + 2
    ops.copy(Xp[0:2], Xp[K : K + 2])
    ops.copy(Xp[K + 2], Xp[2])


def _fill_y(ops: Any, Yp: Any, J: int) -> None:
    # interior Y_{j,k} at row j + 1; the ring continues into the neighbouring k's column
    ops.copy(Yp[0, 1:], Yp[J, :-1])
    ops.copy(Yp[0, 0], Yp[J, -1])
    ops.copy(Yp[J + 1 :, :-1], Yp[1:3, 1:])
    ops.copy(Yp[J + 1 :, -1], Yp[1:3, 0])


def _finish(ops: Any, sums: list[Any], n_window: int, K: int, J: int) -> np.ndarray:
    """Time and k averages of the accumulated sums, as (batch, N_STATS)."""
    arrays = [ops.to_numpy(s) for s in sums]
    out = np.empty((arrays[0].shape[1], len(arrays)))
    for m, a in enumerate(arrays):
        total = a[0].copy()
        for k in range(1, K):  # sequential over k whatever the batch
            total += a[k]
        out[:, m] = total / n_window / K
    out[:, 5] /= J  # mean_Y and mean_Y2 were summed over j too
    out[:, 6] /= J
    return out


def integrate_two_scale(
    X0: np.ndarray,
    Y0: np.ndarray,
    params: dict[str, np.ndarray],
    *,
    dt: float,
    n_spinup: int,
    n_window: int,
    backend: str = "numpy",
    on_step: Callable[[int, np.ndarray, np.ndarray, np.ndarray], None] | None = None,
) -> np.ndarray:
    """Integrate the two-scale model and return its time-averaged statistics.

    Parameters
    ----------
    X0 : (K, batch) float64
    Y0 : (J, K, batch) float64
    params : dict with ``F, h, c, b``, each (batch,) float64
    dt : float
    n_spinup, n_window : int
        Discarded steps, then averaged steps.
    backend : {"numpy", "torch"}
    on_step : callable, optional
        ``on_step(i, X, U, S)`` at each averaged step ``i``, with ``S_k = sum_j Y_{j,k}^2``;
        all (K, batch) numpy arrays, valid only during the call.

    Returns
    -------
    x : (batch, 7) float64, non-finite where the integration blew up
    """
    ops = _ops(backend)
    K, B = X0.shape
    J = Y0.shape[0]
    F, h, c, b = (ops.asarray(params[n]) for n in ("F", "h", "c", "b"))
    hcb, cb = (
        ops.asarray(params["h"] * params["c"] / params["b"]),
        ops.asarray(params["c"] * params["b"]),
    )
    del h, b
    Xs, Xt = ops.zeros((K + 3, B)), ops.zeros((K + 3, B))
    Ys, Yt = ops.zeros((J + 3, K, B)), ops.zeros((J + 3, K, B))
    ops.copy(Xs[2 : K + 2], ops.asarray(X0))
    ops.copy(Ys[1 : J + 1], ops.asarray(Y0))
    dX, aX, tX, SY, U = (ops.zeros((K, B)) for _ in range(5))
    dY, aY, tY = (ops.zeros((J, K, B)) for _ in range(3))
    sums = [ops.zeros((K, B)) for _ in range(N_STATS)]

    def tendency(Xp: Any, Yp: Any) -> None:
        _fill_x(ops, Xp, K)
        _fill_y(ops, Yp, J)
        X, Y = Xp[2 : K + 2], Yp[1 : J + 1]
        ops.sum0(Y, out=SY)
        ops.mul(SY, hcb, out=U)
        ops.sub(Xp[3 : K + 3], Xp[0:K], out=dX)
        ops.mul(dX, Xp[1 : K + 1], out=dX)
        ops.sub(dX, X, out=dX)
        ops.add(dX, F, out=dX)
        ops.sub(dX, U, out=dX)
        ops.sub(Yp[0:J], Yp[3 : J + 3], out=dY)
        ops.mul(dY, Yp[2 : J + 2], out=dY)
        ops.mul(dY, cb, out=dY)
        ops.mul(Y, c, out=tY)
        ops.sub(dY, tY, out=dY)
        ops.mul(X, hcb, out=tX)
        ops.add(dY, tX, out=dY)

    def accumulate(X: Any, Y: Any) -> None:
        ops.add(sums[0], X, out=sums[0])
        ops.mul(X, X, out=tX)
        ops.add(sums[1], tX, out=sums[1])
        ops.add(sums[2], U, out=sums[2])
        ops.mul(U, U, out=tX)
        ops.add(sums[3], tX, out=sums[3])
        ops.mul(X, U, out=tX)
        ops.add(sums[4], tX, out=sums[4])
        ops.add(sums[5], SY, out=sums[5])
        ops.mul(Y, Y, out=tY)
        ops.sum0(tY, out=tX)
        ops.add(sums[6], tX, out=sums[6])

    Xs_in, Ys_in, Xt_in, Yt_in = Xs[2 : K + 2], Ys[1 : J + 1], Xt[2 : K + 2], Yt[1 : J + 1]
    with np.errstate(all="ignore"):  # blow-ups become non-finite rows, flagged by the caller
        for step in range(n_spinup + n_window):
            tendency(Xs, Ys)
            if step >= n_spinup:
                accumulate(Xs_in, Ys_in)
                if on_step is not None:
                    on_step(step - n_spinup, *(ops.to_numpy(a) for a in (Xs_in, U, tX)))
            ops.copy(aX, dX)
            ops.copy(aY, dY)
            for fraction, weight in ((0.5, 2.0), (0.5, 2.0), (1.0, 1.0)):
                ops.mul(dX, fraction * dt, out=Xt_in)
                ops.add(Xt_in, Xs_in, out=Xt_in)
                ops.mul(dY, fraction * dt, out=Yt_in)
                ops.add(Yt_in, Ys_in, out=Yt_in)
                tendency(Xt, Yt)
                ops.add(aX, dX, out=aX)
                ops.add(aY, dY, out=aY)
                if weight == 2.0:
                    ops.add(aX, dX, out=aX)
                    ops.add(aY, dY, out=aY)
            ops.mul(aX, dt / 6, out=aX)
            ops.add(Xs_in, aX, out=Xs_in)
            ops.mul(aY, dt / 6, out=aY)
            ops.add(Ys_in, aY, out=Ys_in)
    return _finish(ops, sums, n_window, K, J)


def integrate_one_scale(
    X0: np.ndarray,
    F: np.ndarray,
    coefficients: np.ndarray,
    y_per_u: np.ndarray,
    y2_coefficients: np.ndarray,
    *,
    dt: float,
    n_spinup: int,
    n_window: int,
) -> np.ndarray:
    """Integrate ``dX_k/dt = -X_{k-1}(X_{k-2}-X_{k+1}) - X_k + F - U_k``, ``U_k = p(X_k)``.

    Parameters
    ----------
    X0 : (K, batch) float64
    F : (batch,) float64
    coefficients : (degree + 1, batch) float64
        Per-sample coefficients of the closure polynomial ``p``, constant term first.
    y_per_u : (batch,) float64
        ``b / (h c J)``: ``mean_Y`` is that of the mean fast variable ``Ybar_k = y_per_u U_k``.
    y2_coefficients : (degree + 1, batch) float64
        Per-sample coefficients of ``q``, whose ``q(X_k)`` stands for ``mean_j Y_{j,k}^2`` in
        ``mean_Y2``.

    Returns
    -------
    x : (batch, 7) float64 in the two-scale model's output order
    """
    ops = _NumpyOps()
    K, B = X0.shape
    Xs, Xt = np.zeros((K + 3, B)), np.zeros((K + 3, B))
    Xs[2 : K + 2] = X0
    dX, aX, tX, U = (np.zeros((K, B)) for _ in range(4))
    sums = [np.zeros((K, B)) for _ in range(N_STATS)]
    highest_first = [np.ascontiguousarray(a, dtype=np.float64) for a in coefficients[::-1]]
    y2_highest_first = [np.ascontiguousarray(a, dtype=np.float64) for a in y2_coefficients[::-1]]
    Q = np.zeros((K, B))

    def tendency(Xp: np.ndarray) -> None:
        _fill_x(ops, Xp, K)
        X = Xp[2 : K + 2]
        np.copyto(U, highest_first[0])
        for a in highest_first[1:]:  # Horner
            np.multiply(U, X, out=U)
            np.add(U, a, out=U)
        np.subtract(Xp[3 : K + 3], Xp[0:K], out=dX)
        np.multiply(dX, Xp[1 : K + 1], out=dX)
        np.subtract(dX, X, out=dX)
        np.add(dX, F, out=dX)
        np.subtract(dX, U, out=dX)

    Xs_in, Xt_in = Xs[2 : K + 2], Xt[2 : K + 2]
    with np.errstate(all="ignore"):
        for step in range(n_spinup + n_window):
            tendency(Xs)
            if step >= n_spinup:
                X = Xs_in
                np.add(sums[0], X, out=sums[0])
                np.multiply(X, X, out=tX)
                np.add(sums[1], tX, out=sums[1])
                np.add(sums[2], U, out=sums[2])
                np.multiply(U, U, out=tX)
                np.add(sums[3], tX, out=sums[3])
                np.multiply(X, U, out=tX)
                np.add(sums[4], tX, out=sums[4])
                np.copyto(Q, y2_highest_first[0])
                for a in y2_highest_first[1:]:
                    np.multiply(Q, X, out=Q)
                    np.add(Q, a, out=Q)
                np.add(sums[6], Q, out=sums[6])
            np.copyto(aX, dX)
            for fraction, weight in ((0.5, 2.0), (0.5, 2.0), (1.0, 1.0)):
                np.multiply(dX, fraction * dt, out=Xt_in)
                np.add(Xt_in, Xs_in, out=Xt_in)
                tendency(Xt)
                np.add(aX, dX, out=aX)
                if weight == 2.0:
                    np.add(aX, dX, out=aX)
            np.multiply(aX, dt / 6, out=aX)
            np.add(Xs_in, aX, out=Xs_in)
        np.multiply(sums[2], y_per_u, out=sums[5])
    out = _finish(ops, sums, n_window, K, 1)
    return out
