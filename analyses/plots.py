"""Plot helpers in the study's style: accuracy curves per run (D_Known / D_Unk / D_Held colours) or per split."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .common import SPLIT_COLORS, SPLIT_LABELS, accuracy_frame  # noqa: E402


def _style():
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.1)


def run_panels(metrics: dict[str, list[dict]], splits=("known", "unknown", "held"), note: str = ""):
    """One panel per run; in each, accuracy over epochs for each split. Returns (figure, long table)."""
    _style()
    df = pd.concat([accuracy_frame(label, m) for label, m in metrics.items()], ignore_index=True)
    df = df[df["split"].isin(splits)]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.6), sharey=True, squeeze=False)
    for ax, label in zip(axes[0], metrics):
        sub = df[df["run"] == label]
        for split in splits:
            s = sub[sub["split"] == split]
            if not s.empty:
                ax.plot(s["epoch"], s["accuracy"], marker="o", color=SPLIT_COLORS.get(split),
                        label=SPLIT_LABELS.get(split, split))
        ax.set_title(label)
        ax.set_xlabel("Epoch")
        ax.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("Exact-match accuracy")
    axes[0][-1].legend(loc="best", fontsize=8)
    if note:
        fig.text(0.5, -0.03, note, ha="center", fontsize=8)
    fig.tight_layout()
    return fig, df


def split_panels(metrics: dict[str, list[dict]], splits, note: str = ""):
    """One panel per split; in each, accuracy over epochs for each run."""
    _style()
    df = pd.concat([accuracy_frame(label, m) for label, m in metrics.items()], ignore_index=True)
    df = df[df["split"].isin(splits)]
    fig, axes = plt.subplots(1, len(splits), figsize=(4.2 * len(splits), 3.6), squeeze=False)
    for ax, split in zip(axes[0], splits):
        sub = df[df["split"] == split]
        if not sub.empty:
            sns.lineplot(data=sub, x="epoch", y="accuracy", hue="run", marker="o", ax=ax)
        ax.set_title(SPLIT_LABELS.get(split, split))
        ax.set_xlabel("Epoch")
        ax.set_ylabel("Exact-match accuracy")
    if note:
        fig.text(0.5, -0.03, note, ha="center", fontsize=8)
    fig.tight_layout()
    return fig, df


def metric_panels(frames: pd.DataFrame, metrics: list[str], note: str = ""):
    """One panel per metric name (column 'metric'), lines per run; frames has run, epoch, metric, value."""
    _style()
    cols = 4
    rows = -(-len(metrics) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, metric in zip(axes.flat, metrics):
        sub = frames[frames["metric"] == metric]
        if not sub.empty:
            sns.lineplot(data=sub, x="epoch", y="value", hue="run", marker="o", ax=ax, legend=ax is axes.flat[0])
        ax.set_title(metric)
        ax.set_xlabel("Epoch")
        ax.set_ylabel("")
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    if note:
        fig.text(0.5, -0.02, note, ha="center", fontsize=8)
    fig.tight_layout()
    return fig
