"""Paper-style plots of a drift metric over training (seaborn): lines, one per run, or a layer × checkpoint heatmap.

Nothing here touches matplotlib's global state at import or call: styles apply to the figure being drawn only,
and the backend is the caller's (a script that only saves files may choose Agg where it starts).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import ProbekitError
from .io import atomic_write

LABELS = {
    "RD": "Hidden-state drift (RD)",
    "NS": "Neighbourhood structure (NS)",
    "MTD": "Mean targeted drift (MTD)",
    "Rank-rho": "Output-distribution drift (Rank-ρ)",
    "NTR": "Neighbourhood token ratio (NTR)",
    "JSD": "Jensen–Shannon divergence (JSD)",
    "accuracy_held": "D_Held accuracy (greedy exact match)",
    "accuracy_unknown": "D_Unk accuracy (greedy exact match)",
    "accuracy_new": "New facts' accuracy (greedy exact match)",
}


def read_probes(paths: str | Path | list[str | Path]) -> pd.DataFrame:
    """The ``probes.csv`` table of a probe output directory (or CSV file), or of several concatenated."""
    frames = []
    for p in map(Path, [paths] if isinstance(paths, (str, Path)) else paths):
        f = p / "probes.csv" if p.is_dir() else p
        if not f.is_file():
            raise ProbekitError(f"no probe table at {f}; run `probekit probe ... --out {p}` first")
        frames.append(pd.read_csv(f))
    return pd.concat(frames, ignore_index=True)


def plot_metric(df: pd.DataFrame, metric: str, title: str | None = None, *, ax=None):
    """Draw `metric` over epochs/steps, one line per run (and per layer of a ``--layers`` table), on `ax` (default:
    a new 5.5 × 3.8 in figure); return the Figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sub = _rows_of(df, metric)
    with sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.2):
        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 3.8))
        several = sub["layer"].nunique() > 1  # a --layers table: one line per layer (and run)
        one_run = sub["run"].nunique() == 1
        sns.lineplot(data=sub, x="index", y="value", hue="layer" if several and one_run else "run",
                     style="layer" if several and not one_run else None, marker="o", ax=ax,
                     palette="viridis" if several and one_run else None)
        ax.set_xlabel(sub["kind"].iloc[0].capitalize())
        ax.set_ylabel(LABELS.get(metric, metric))
        layer = sorted(sub["layer"].unique())
        ax.set_title(title or f"{LABELS.get(metric, metric)}, layer {', '.join(map(str, layer))}")
        ax.figure.tight_layout()
    return ax.figure


def plot_heatmap(df: pd.DataFrame, metric: str, title: str | None = None):
    """Draw `metric` over layer (rows, deepest on top) × checkpoint (columns, in training order), one panel per
    run; return the Figure. Needs a table probed at several layers (``--layers``)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sub = _rows_of(df, metric)
    runs = list(dict.fromkeys(sub["run"]))
    with sns.plotting_context("paper", font_scale=1.1):
        width = max(4.5, 1.2 + 0.55 * sub["index"].nunique()) * len(runs)
        fig, axes = plt.subplots(1, len(runs), figsize=(width, 4.2),
                                 squeeze=False)
        for ax, run in zip(axes[0], runs):
            grid = sub[sub["run"] == run].pivot_table(index="layer", columns="index", values="value", sort=True)
            sns.heatmap(grid.iloc[::-1], ax=ax, cmap="viridis", cbar_kws={"label": LABELS.get(metric, metric)})
            ax.set_xlabel(sub["kind"].iloc[0].capitalize())
            ax.set_ylabel("Layer")
            ax.set_title(run if len(runs) > 1 else title or LABELS.get(metric, metric))
        if len(runs) > 1 and title:
            fig.suptitle(title)
        fig.tight_layout()
    return fig


def _rows_of(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    sub = df[df["metric"] == metric]
    if sub.empty:
        have = ", ".join(sorted(df["metric"].unique()))
        raise ProbekitError(f"metric {metric!r} is not in the probe table (it has: {have})")
    return sub


def save_figure(fig, out: str | Path, **savefig_kw) -> list[Path]:
    """Save `fig` as ``out`` .png and .pdf (150 dpi, other ``savefig`` options as given), each written atomically;
    return both paths."""
    out = Path(out).with_suffix("")
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    for p in paths:
        with atomic_write(p) as tmp:
            fig.savefig(tmp, format=p.suffix[1:], dpi=150, **savefig_kw)
    return paths
