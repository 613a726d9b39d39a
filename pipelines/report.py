"""The study report: a scores table (CSV) and figures of each metric against the level.

Built from the saved score stores alone, so it can be rebuilt without recomputing anything.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from inference.scores import load_scores  # noqa: E402

__all__ = ["scores_table", "write_report", "METRICS"]

# column: (axis label, better when lower?)
METRICS = {
    "c2st_mean": ("C2ST vs exact posterior (0.5 = identical)", True),
    "nltp_mean": ("NLTP on held-out simulator pairs", True),
    "sbc_min_pvalue": ("smallest SBC uniformity p-value", False),
    "emulator_nll_mean": ("emulator NLL of held-out simulator pairs", True),
}


def scores_table(score_stores: dict[str, Path]) -> pd.DataFrame:
    """One row per level (and the ceiling) with the summary of every score.

    Parameters
    ----------
    score_stores : dict
        Level name to its ``scores.zarr``, in ladder order.
    """
    rows = []
    for name, path in score_stores.items():
        ds = load_scores(path)
        c2st = ds["c2st"].values
        rows.append(
            {
                "level": name,
                "simplification": float(ds.attrs.get("simplification", np.nan)),
                "c2st_mean": float(c2st.mean()),
                "c2st_min": float(c2st.min()),
                "c2st_max": float(c2st.max()),
                "nltp_mean": float(ds["nltp"].values.mean()),
                "sbc_min_pvalue": float(ds["sbc_pvalue"].values.min()),
                "emulator_nll_mean": (
                    float(ds["emulator_nll"].values.mean()) if "emulator_nll" in ds else np.nan
                ),
                "observations": int(c2st.size),
            }
        )
    return pd.DataFrame(rows)


def _png(fig: plt.Figure) -> bytes:
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _figure(table: pd.DataFrame, column: str, label: str) -> bytes:
    levels = table[table["level"] != "ceiling"]
    ceiling = table[table["level"] == "ceiling"]
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=110)
    if column == "c2st_mean":
        spread = [levels[column] - levels["c2st_min"], levels["c2st_max"] - levels[column]]
        ax.errorbar(
            levels["simplification"],
            levels[column],
            yerr=spread,
            marker="o",
            capsize=3,
            label="emulator levels (range over observations)",
        )
    else:
        ax.plot(levels["simplification"], levels[column], marker="o", label="emulator levels")
    for x, y, name in zip(levels["simplification"], levels[column], levels["level"], strict=True):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    if len(ceiling) and np.isfinite(ceiling[column].iloc[0]):
        ax.axhline(
            ceiling[column].iloc[0], color="k", linestyle="--", label="true simulator (ceiling)"
        )
    ax.set_xlabel("declared simplification")
    ax.set_ylabel(label, fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def _versus_emulator_error(table: pd.DataFrame) -> bytes:
    levels = table[(table["level"] != "ceiling") & table["emulator_nll_mean"].notna()]
    fig, ax = plt.subplots(figsize=(5, 3.4), dpi=110)
    ax.scatter(levels["emulator_nll_mean"], levels["c2st_mean"])
    for x, y, name in zip(
        levels["emulator_nll_mean"], levels["c2st_mean"], levels["level"], strict=True
    ):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel("measured emulator error: NLL of held-out simulator pairs")
    ax.set_ylabel("posterior C2ST vs exact posterior", fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _embed(png: bytes, label: str) -> str:
    encoded = base64.b64encode(png).decode()
    return (
        f'<figure><img alt="{html.escape(label)}" src="data:image/png;base64,{encoded}">'
        f"<figcaption>{html.escape(label)}</figcaption></figure>"
    )


def write_report(table: pd.DataFrame, out_dir: Path, title: str) -> Path:
    """Write ``scores.csv``, ``figures/*.png`` and a self-contained ``index.html``.

    Returns
    -------
    Path
        The ``index.html`` written.
    """
    figures_dir = out_dir / "figures"
    figures_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "scores.csv", index=False)
    blocks = []
    for column, (label, lower_is_better) in METRICS.items():
        if table[column].isna().all():
            continue
        png = _figure(table, column, label)
        (figures_dir / f"{column}.png").write_bytes(png)
        hint = "lower is better" if lower_is_better else "higher is better"
        blocks.append(_embed(png, f"{label} ({hint})"))
    if table["emulator_nll_mean"].notna().sum() >= 2:
        png = _versus_emulator_error(table)
        (figures_dir / "c2st_vs_emulator_error.png").write_bytes(png)
        blocks.append(_embed(png, "posterior C2ST against the measured emulator error"))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
figure{{display:inline-block;margin:1em}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>Posteriors trained on emulator data at each fidelity level, scored against the truth:
C2ST against the exact posterior at each observation, NLTP and SBC on held-out true-simulator
pairs. The ceiling is the same posterior budget trained on true-simulator data.</p>
<h2>Scores</h2>
{table.to_html(index=False, float_format=lambda v: f"{v:.3f}", border=0)}
<h2>Figures</h2>
{"".join(blocks)}
</body></html>
"""
    index = out_dir / "index.html"
    index.write_text(page)
    return index
