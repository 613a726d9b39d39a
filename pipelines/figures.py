"""The report's figures, each returned as PNG bytes (matplotlib, Agg backend)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from pipelines.layout import CEILING  # noqa: E402

__all__ = [
    "first_replicate",
    "score_vs_level",
    "score_vs_emulator_error",
    "pair_plot",
    "sbc_histograms",
    "coverage_curves",
    "cost_quality_frontier",
    "line_against",
]

_DPI = 110


def first_replicate(values: xr.DataArray) -> xr.DataArray:
    """The values of the first level and replicate (a level's scores carry both dims)."""
    for dim in ("level", "replicate"):
        if dim in values.dims:
            values = values.isel({dim: 0})
    return values


def _png(fig: plt.Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _levels(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return table[table["level"] != CEILING], table[table["level"] == CEILING]


def _interval(frame: pd.DataFrame, score: str) -> np.ndarray:
    mean = frame[f"{score}_mean"].to_numpy()
    lo = frame.get(f"{score}_lo", frame[f"{score}_mean"]).to_numpy()
    hi = frame.get(f"{score}_hi", frame[f"{score}_mean"]).to_numpy()
    return np.vstack([mean - lo, hi - mean]).clip(min=0)


def _annotate(ax: plt.Axes, xs, ys, names) -> None:
    for x, y, name in zip(xs, ys, names, strict=True):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)


def _by_method(table: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    if "method" not in table:
        return [("", table)]
    return [(str(method), rows) for method, rows in table.groupby("method", sort=False)]


def score_vs_level(table: pd.DataFrame, score: str, label: str) -> bytes:
    """A score against the declared simplification, one line per inference method; bars span
    the replicates, dashed lines are each method's ceiling."""
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=_DPI)
    for index, (method, rows) in enumerate(_by_method(table)):
        levels, ceiling = _levels(rows[rows[f"{score}_mean"].notna()])
        colour = f"C{index}"
        ax.errorbar(
            levels["simplification"],
            levels[f"{score}_mean"],
            yerr=_interval(levels, score),
            marker="o",
            capsize=3,
            color=colour,
            label=f"{method or 'emulator levels'} (min-max over replicates)",
        )
        _annotate(ax, levels["simplification"], levels[f"{score}_mean"], levels["level"])
        if len(ceiling) and np.isfinite(ceiling[f"{score}_mean"].iloc[0]):
            ax.axhline(
                ceiling[f"{score}_mean"].iloc[0],
                color=colour,
                ls="--",
                label=f"ceiling {method}".strip(),
            )
    ax.set_xlabel("declared simplification")
    ax.set_ylabel(label, fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def score_vs_emulator_error(
    table: pd.DataFrame,
    score: str,
    error: str,
    label: str,
    slope: float | None = None,
    intercept: float | None = None,
) -> bytes:
    """A posterior score against the level's *measured* emulator error (one marker colour per
    inference method), with the first method's fitted line."""
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=_DPI)
    first = None
    for index, (method, rows) in enumerate(_by_method(table)):
        levels, _ = _levels(rows)
        levels = levels[levels[error].notna() & levels[f"{score}_mean"].notna()]
        first = levels if first is None else first
        ax.errorbar(
            levels[error],
            levels[f"{score}_mean"],
            yerr=_interval(levels, score),
            fmt="o",
            capsize=3,
            color=f"C{index}",
            label=method or None,
        )
        _annotate(ax, levels[error], levels[f"{score}_mean"], levels["level"])
    levels = first if first is not None else table.iloc[:0]
    if slope is not None and intercept is not None and np.isfinite(slope) and len(levels):
        grid = np.linspace(levels[error].min(), levels[error].max(), 20)
        ax.plot(grid, intercept + slope * grid, "k:", label=f"fit: slope {slope:.3g}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax.set_xlabel(f"measured emulator error: {error.removeprefix('emulator_')}")
    ax.set_ylabel(label, fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def pair_plot(
    draws: dict[str, np.ndarray], reference: np.ndarray, names: list[str], max_params: int = 4
) -> bytes:
    """Pairwise marginals of each level's posterior draws over the reference posterior.

    Parameters
    ----------
    draws : dict
        Level name to draws ``(n, n_params)`` at one observation.
    reference : (n, n_params)
    names : parameter names
    """
    k = min(len(names), max_params)
    fig, axes = plt.subplots(k, k, figsize=(2.1 * k + 1, 2.1 * k), dpi=_DPI, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i in range(k):
        for j in range(k):
            ax = axes[i, j]
            if j > i:
                ax.axis("off")
                continue
            if i == j:
                bins = np.histogram_bin_edges(reference[:, i], bins=30)
                ax.hist(reference[:, i], bins=bins, color="0.6", density=True)
                for c, (name, sample) in enumerate(draws.items()):
                    inside = sample[(sample[:, i] >= bins[0]) & (sample[:, i] <= bins[-1]), i]
                    if inside.size == 0:  # all draws off the reference's range: nothing to draw
                        continue
                    # weights, not density=True: mass outside the reference's range stays lost
                    weight = 1.0 / (len(sample) * (bins[1] - bins[0]))
                    ax.hist(
                        inside,
                        bins=bins,
                        weights=np.full(inside.size, weight),
                        histtype="step",
                        color=colours[c % len(colours)],
                        label=name,
                    )
            else:
                ax.scatter(reference[:, j], reference[:, i], s=2, color="0.6", alpha=0.4)
                for c, sample in enumerate(draws.values()):
                    ax.scatter(
                        sample[:, j], sample[:, i], s=2, alpha=0.3, color=colours[c % len(colours)]
                    )
            if i == k - 1:
                ax.set_xlabel(names[j], fontsize=8)
            if j == 0 and i > 0:
                ax.set_ylabel(names[i], fontsize=8)
            ax.tick_params(labelsize=6)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(
        handles, labels, loc="upper right", fontsize=7, title="grey: reference", title_fontsize=7
    )
    return _png(fig)


def sbc_histograms(scores: dict[str, xr.Dataset], n_bins: int = 10) -> bytes:
    """SBC rank histograms of each level (pooled over parameters, first replicate).

    The grey band is the central 99 % range of a bin's count under uniform ranks.
    """
    names = [name for name, ds in scores.items() if "sbc_rank" in ds]
    fig, axes = plt.subplots(
        1, len(names), figsize=(2.4 * len(names), 2.6), dpi=_DPI, squeeze=False
    )
    for ax, name in zip(axes[0], names, strict=True):
        ds = scores[name]
        values = first_replicate(ds["sbc_rank"]).values.ravel()
        values = values[np.isfinite(values)]
        top = float(ds.attrs.get("n_sbc_samples", values.max() if values.size else 1))
        counts, edges = np.histogram(values, bins=n_bins, range=(0, top + 1))
        expected = values.size / n_bins
        spread = 2.58 * np.sqrt(expected * (1 - 1 / n_bins))
        ax.axhspan(expected - spread, expected + spread, color="0.85")
        ax.bar(edges[:-1], counts, width=np.diff(edges), align="edge", edgecolor="k", lw=0.4)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("rank", fontsize=8)
        ax.tick_params(labelsize=6)
    axes[0, 0].set_ylabel("count", fontsize=8)
    return _png(fig)


def coverage_curves(scores: dict[str, xr.Dataset]) -> bytes:
    """Expected coverage of highest-density regions, and TARP's, against credibility."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), dpi=_DPI)
    for variable, axis_dim, ax, title in (
        ("hpd_coverage", "credibility", axes[0], "HPD region coverage"),
        ("tarp_ecp", "alpha", axes[1], "TARP expected coverage"),
    ):
        for name, ds in scores.items():
            if variable not in ds:
                continue
            curve = ds[variable]
            other = [d for d in curve.dims if d != axis_dim]
            mean = curve.mean(dim=other)
            style = {"color": "k", "ls": "--"} if name == CEILING else {}
            ax.plot(curve[axis_dim].values, mean.values, label=name, **style)
        ax.plot([0, 1], [0, 1], color="0.6", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("credibility level", fontsize=8)
        ax.set_ylabel("empirical coverage", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return _png(fig)


def cost_quality_frontier(
    table: pd.DataFrame, score: str, label: str, target: float, lower_is_better: bool
) -> tuple[bytes, str | None]:
    """Each level's quality against its cost; the cheapest level meeting ``target`` starred.

    Returns
    -------
    png : bytes
    chosen : str or None
        The cheapest level that meets the target (None if none does).
    """
    frame = table[table[f"{score}_mean"].notna() & table["total_core_hours"].notna()]
    frame = frame.sort_values("total_core_hours")
    values = frame[f"{score}_mean"]
    meets = values <= target if lower_is_better else values >= target
    chosen = frame[meets & (frame["level"] != CEILING)].head(1)
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=_DPI)
    ax.errorbar(
        frame["total_core_hours"],
        frame[f"{score}_mean"],
        yerr=_interval(frame, score),
        fmt="o",
        capsize=3,
    )
    names = frame["unit"] if "unit" in frame else frame["level"]
    _annotate(ax, frame["total_core_hours"], frame[f"{score}_mean"], names)
    best, frontier_x, frontier_y = None, [], []
    for x, y in zip(frame["total_core_hours"], frame[f"{score}_mean"], strict=True):
        better = best is None or (y < best if lower_is_better else y > best)
        if better:
            best = y
            frontier_x.append(x)
            frontier_y.append(y)
    ax.step(frontier_x, frontier_y, where="post", color="C1", label="cost-quality frontier")
    ax.axhline(target, color="C2", ls=":", label=f"quality target {target:g}")
    if len(chosen):
        ax.scatter(
            chosen["total_core_hours"],
            chosen[f"{score}_mean"],
            s=250,
            marker="*",
            color="C3",
            zorder=5,
            label=f"cheapest meeting it: {_unit(chosen)}",
        )
    if (frame["total_core_hours"] > 0).all() and len(frame) > 1:
        ax.set_xscale("log")
    ax.set_xlabel("cost: core-hours (simulator runs used + training + sampling)", fontsize=8)
    ax.set_ylabel(label, fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig), (_unit(chosen) if len(chosen) else None)


def _unit(rows: pd.DataFrame) -> str:
    return str((rows["unit"] if "unit" in rows else rows["level"]).iloc[0])


def finetune_curve(frame: pd.DataFrame, ceiling: float, label: str) -> bytes:
    """A score against the number of true runs fine-tuned on (``frame``: k, mean, lo, hi),
    with the ceiling's score as a line."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=_DPI)
    mean = frame["mean"].to_numpy()
    spread = np.vstack([mean - frame["lo"].to_numpy(), frame["hi"].to_numpy() - mean])
    ax.errorbar(frame["k"], mean, yerr=spread.clip(min=0), fmt="o-", capsize=3, label="fine-tuned")
    if np.isfinite(ceiling):
        ax.axhline(ceiling, color="C2", ls="--", label=f"ceiling {ceiling:.3f}")
    ax.set_xlabel("true-simulator runs fine-tuned on (k)")
    ax.set_ylabel(label, fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def dose_response_curve(curve: Any, knob: str, label: str) -> bytes:
    """Per-level means with bootstrap intervals against the knob, the isotonic fit, the target
    and the crossing with its interval."""
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=_DPI)
    ax.errorbar(
        curve.knob,
        curve.mean,
        yerr=np.vstack([curve.mean - curve.low, curve.high - curve.mean]).clip(min=0),
        fmt="o",
        capsize=3,
        label=f"levels ({curve.confidence:.0%} bootstrap intervals)",
    )
    ax.plot(curve.knob, curve.fitted, "k-", lw=1, label="isotonic fit")
    ax.axhline(curve.target, color="C2", ls=":", label=f"quality target {curve.target:g}")
    if np.isfinite(curve.crossing):
        low = curve.crossing_low if np.isfinite(curve.crossing_low) else curve.knob.min()
        high = curve.crossing_high if np.isfinite(curve.crossing_high) else curve.knob.max()
        ax.axvspan(low, high, color="C3", alpha=0.15, label="crossing interval")
        ax.axvline(curve.crossing, color="C3", ls="--", label=f"crossing {curve.crossing:.3g}")
    if (curve.knob > 0).all() and curve.knob.max() / curve.knob.min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel(knob)
    ax.set_ylabel(label, fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def line_against(
    table: pd.DataFrame,
    x: str,
    score: str,
    x_label: str,
    label: str,
    *,
    exact: str | None = None,
    nominal: float | None = None,
    symlog: bool = False,
) -> bytes:
    """``score`` against ``x``, one line per unit with ``<score>_lo``/``_hi`` bars (the ceiling's
    dashed); the exact assumed posterior's analytic curve (column ``exact``, thick grey) and a
    ``nominal`` value (dotted grey) where given; ``symlog``: a y axis linear within 1 of zero and
    logarithmic beyond, so that values of -1 and -40 can both be read."""
    fig, ax = plt.subplots(figsize=(5.6, 3.6), dpi=_DPI)
    for unit, rows in table.groupby("unit", sort=False):
        rows = rows.sort_values(x)
        errors = _interval(rows.rename(columns={score: f"{score}_mean"}), score)
        ceiling = str(unit).split("/")[0] == CEILING
        ax.errorbar(rows[x], rows[score], yerr=errors, marker="s" if ceiling else "o", ms=3,
                    capsize=2, ls="--" if ceiling else "-", label=unit)  # fmt: skip
    if exact is not None and exact in table and table[exact].notna().any():
        curve = table.drop_duplicates(x).sort_values(x)
        ax.plot(curve[x], curve[exact], color="0.3", lw=3, alpha=0.4,
                label="exact assumed posterior (analytic)")  # fmt: skip
    if nominal is not None:
        ax.axhline(nominal, color="0.5", ls=":", lw=1, label=f"nominal {nominal:g}")
    if symlog:
        ax.set_yscale("symlog", linthresh=1.0)
    ax.set_xlabel(x_label, fontsize=8)
    ax.set_ylabel(label, fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _png(fig)
