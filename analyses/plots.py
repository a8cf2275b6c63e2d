"""Plots in the study's style: accuracy curves per run (D_Known / D_Unk / D_Held colours) or per split, metric grids.

Nothing is set at import: ``style()`` applies the one seaborn theme for the figures built inside it and restores
matplotlib's settings afterwards (a notebook keeps its own). Every function returns the Figure. Where the table has
`lo` / `hi` columns, each line carries its 95% interval as a shaded band (``lines``, ``band``).
"""
from __future__ import annotations

from contextlib import contextmanager

import matplotlib as mpl
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

SPLIT_COLORS = {"known": "#005b8f", "unknown": "#dc7626", "held": "#cc78a8"}  # the study's D_Known, D_Unk, D_Held
SPLIT_LABELS = {"known": "D_Known", "unknown": "D_Unk", "held": "D_Held", "maybe_known": "MaybeKnown (held-out)",
                "weakly_known": "WeaklyKnown (held-out)"}
FONT_SCALE = 1.1
SINGLE_PANEL_FONT_SCALE = 1.2  # one small panel (fig4, fig5): larger text
GRID_FONT_SCALE = 1.0  # many panels (fig9, families): smaller text
BAND_ALPHA = 0.2
LINESTYLES = ("-", "--", ":", "-.")


@contextmanager
def style(font_scale: float = FONT_SCALE):
    """The figures' seaborn theme (whitegrid, paper context) inside the block; matplotlib's settings after it."""
    with mpl.rc_context():
        sns.set_theme(style="whitegrid", context="paper", font_scale=font_scale)
        yield


def band(ax, x, lo, hi, color) -> None:
    """Shade the 95% interval lo..hi over x in the line's colour (nothing where the interval is missing)."""
    lo, hi = pd.Series(lo, dtype=float), pd.Series(hi, dtype=float)
    if lo.notna().any():
        ax.fill_between(list(x), lo, hi, color=color, alpha=BAND_ALPHA, linewidth=0)


def lines(ax, df: pd.DataFrame, x: str, y: str, hue: str, palette: dict | None = None, style: str | None = None,
          legend: bool = True, marker: str = "o") -> None:
    """One line per `hue` level (and `style` level, as line styles) in order of appearance, each with its band
    where `df` has lo / hi; colours from `palette` or the theme's cycle, as seaborn's lineplot would give them."""
    levels = list(dict.fromkeys(df[hue]))
    colors = palette or dict(zip(levels, sns.color_palette(n_colors=len(levels))))
    styles = dict(zip(dict.fromkeys(df[style]), LINESTYLES * len(df))) if style else {}
    for keys, sub in df.groupby([hue, style] if style else [hue], sort=False):
        sub = sub.sort_values(x)
        ax.plot(sub[x], sub[y], marker=marker, color=colors.get(keys[0]), ls=styles.get(keys[-1], "-"),
                label=", ".join(map(str, keys)))
        if "lo" in sub and "hi" in sub:
            band(ax, sub[x], sub["lo"], sub["hi"], colors.get(keys[0]))
    if legend:
        bands = " (bands: 95% intervals)" if "lo" in df and df["lo"].notna().any() else ""
        ax.legend(fontsize=8, title=(f"{hue}, {style}" if style else hue) + bands, title_fontsize=8)


def _note(fig, note: str, y: float) -> None:
    if note:
        fig.text(0.5, y, note, ha="center", fontsize=8)


def run_panels(df: pd.DataFrame, runs: list[str], splits=("known", "unknown", "held"), note: str = ""):
    """One panel per run; in each, accuracy over epochs for each split (df: run, epoch, split, accuracy[, lo, hi])."""
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.6), sharey=True, squeeze=False)
    for ax, label in zip(axes[0], runs):
        sub = df[df["run"] == label]
        for split in splits:
            s = sub[sub["split"] == split]
            if not s.empty:
                ax.plot(s["epoch"], s["accuracy"], marker="o", color=SPLIT_COLORS.get(split),
                        label=SPLIT_LABELS.get(split, split))
                if "lo" in s and "hi" in s:
                    band(ax, s["epoch"], s["lo"], s["hi"], SPLIT_COLORS.get(split))
        ax.set_title(label)
        ax.set_xlabel("Epoch")
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("Exact-match accuracy")
    axes[0][-1].legend(loc="best", fontsize=8, title="bands: 95% intervals" if "lo" in df else None, title_fontsize=8)
    _note(fig, note, -0.03)
    fig.tight_layout()
    return fig


def split_panels(df: pd.DataFrame, splits, note: str = ""):
    """One panel per split; in each, accuracy over epochs for each run (df: run, epoch, split, accuracy[, lo, hi])."""
    fig, axes = plt.subplots(1, len(splits), figsize=(4.2 * len(splits), 3.6), squeeze=False)
    for ax, split in zip(axes[0], splits):
        sub = df[df["split"] == split]
        if not sub.empty:
            lines(ax, sub, "epoch", "accuracy", "run")
        ax.set_title(SPLIT_LABELS.get(split, split))
        ax.set_xlabel("Epoch")
        ax.set_ylabel("Exact-match accuracy")
    _note(fig, note, -0.03)
    fig.tight_layout()
    return fig


def metric_panels(frames: pd.DataFrame, metrics: list[str], note: str = ""):
    """One panel per metric name (column 'metric'), lines per run; frames has run, epoch, metric, value[, lo, hi]."""
    cols = 4
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        sub = frames[frames["metric"] == metric]
        if not sub.empty:
            lines(ax, sub, "epoch", "value", "run", legend=ax is axes.flat[0])
        ax.set_title(metric)
        ax.set_xlabel("Epoch")
        ax.set_ylabel("")
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    _note(fig, note, -0.02)
    fig.tight_layout()
    return fig
