"""Paper-style line plots of a drift metric over training, one line per run (seaborn).

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
    """Draw `metric` over epochs/steps, hue = run, on `ax` (default: a new 5.5 × 3.8 in figure); return the Figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    sub = df[df["metric"] == metric]
    if sub.empty:
        have = ", ".join(sorted(df["metric"].unique()))
        raise ProbekitError(f"metric {metric!r} is not in the probe table (it has: {have})")
    with sns.axes_style("whitegrid"), sns.plotting_context("paper", font_scale=1.2):
        if ax is None:
            _, ax = plt.subplots(figsize=(5.5, 3.8))
        sns.lineplot(data=sub, x="index", y="value", hue="run", marker="o", ax=ax)
        ax.set_xlabel(sub["kind"].iloc[0].capitalize())
        ax.set_ylabel(LABELS.get(metric, metric))
        layer = sorted(sub["layer"].unique())
        ax.set_title(title or f"{LABELS.get(metric, metric)}, layer {', '.join(map(str, layer))}")
        ax.figure.tight_layout()
    return ax.figure


def save_figure(fig, out: str | Path, **savefig_kw) -> list[Path]:
    """Save `fig` as ``out`` .png and .pdf (150 dpi, other ``savefig`` options as given), each written atomically;
    return both paths."""
    out = Path(out).with_suffix("")
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    for p in paths:
        with atomic_write(p) as tmp:
            fig.savefig(tmp, format=p.suffix[1:], dpi=150, **savefig_kw)
    return paths
