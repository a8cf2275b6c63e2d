"""Paper-style line plots of a drift metric over training, one line per run (seaborn)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from .errors import ProbekitError  # noqa: E402

LABELS = {
    "RD": "Hidden-state drift (RD)",
    "NS": "Neighbourhood structure (NS)",
    "MTD": "Mean targeted drift (MTD)",
    "Rank-rho": "Output-distribution drift (Rank-ρ)",
    "NTR": "Neighbourhood token ratio (NTR)",
    "JSD": "Jensen–Shannon divergence (JSD)",
}


def read_probes(paths: list[str | Path]) -> pd.DataFrame:
    """Concatenate the ``probes.csv`` tables of several probe output directories (or CSV files)."""
    frames = []
    for p in map(Path, paths):
        f = p / "probes.csv" if p.is_dir() else p
        if not f.is_file():
            raise ProbekitError(f"no probe table at {f}; run `probekit probe ... --out {p}` first")
        frames.append(pd.read_csv(f))
    return pd.concat(frames, ignore_index=True)


def plot_metric(df: pd.DataFrame, metric: str, out: str | Path, title: str | None = None) -> list[Path]:
    """Plot `metric` over epochs/steps, hue = run; save ``out`` as .png and .pdf and return both paths."""
    sub = df[df["metric"] == metric]
    if sub.empty:
        have = ", ".join(sorted(df["metric"].unique()))
        raise ProbekitError(f"metric {metric!r} is not in the probe table (it has: {have})")
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.2)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    sns.lineplot(data=sub, x="index", y="value", hue="run", marker="o", ax=ax)
    ax.set_xlabel(sub["kind"].iloc[0].capitalize())
    ax.set_ylabel(LABELS.get(metric, metric))
    layer = sorted(sub["layer"].unique())
    ax.set_title(title or f"{LABELS.get(metric, metric)}, layer {', '.join(map(str, layer))}")
    fig.tight_layout()
    out = Path(out).with_suffix("")
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = [out.with_suffix(".png"), out.with_suffix(".pdf")]
    for p in paths:
        fig.savefig(p, dpi=150)
    plt.close(fig)
    return paths
