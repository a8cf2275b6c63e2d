"""Figure 5: hidden-state drift RD of held-out entities over training (§5.2).

Three runs on the synthetic P17 setting (D_Known ∪ synthetic facts, D_Held = HighlyKnown P17 dev): SFT on semantic
(token-mix) keys, self-distillation on semantic keys, and SFT on UUID keys. RD (eq. 4) is measured every epoch at
the probe layer (default: the middle layer) by the trainer's probe callback; its 95% band resamples the held-out
facts (per-fact drift from the probe's cached states, ``analyses.drift_items``).

    python -m analyses.fig5                      # quick profile: embedded SmolLM2-135M on CPU
    python -m analyses.fig5 --profile paper --model /path/to/Qwen2.5-1.5B --device cuda
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from .comparisons import forgetting_lines
from .drift_items import drift_difference_lines, drift_frame, missing_intervals
from .outputs import interval_cell, write_outputs
from .plots import SINGLE_PANEL_FONT_SCALE, lines
from .profiles import synthetic_profile
from .runs import synthetic_runs
from .analysis import Analysis

NAME = "fig5"
COLORS = {"SFT, semantic keys": "#1f77b4", "Self-distillation, semantic keys": "#ff7f0e", "SFT, UUID keys": "#2ca02c"}


def plot(rd: pd.DataFrame, note: str):
    """RD over epochs, one line per condition with its 95% band (rd: condition, epoch, value, lo, hi)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    lines(ax, rd, "epoch", "value", "condition", palette=COLORS)
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Hidden-state drift RD (1 − cos)")
    ax.set_title("Hidden-state drift of held-out entities", fontsize=11)
    fig.text(0.5, -0.04, note, ha="center", fontsize=8)
    return fig


def render(ctx, trained) -> pd.DataFrame:
    df = pd.concat([drift_frame(t) for t in trained], ignore_index=True)
    rd = df[df["metric"] == "RD"].rename(columns={"run": "condition"})
    fig = plot(rd, ctx.caption(f"{ctx.profile.synthetic} synthetic facts"))
    write_outputs(fig, rd[["condition", "epoch", "value", "lo", "hi"]].rename(columns={"value": "RD"}), NAME,
                  ctx.figures_dir, ctx.seconds())
    last = rd[rd["epoch"] == rd["epoch"].max()]
    for _, r in last.iterrows():
        print(f"RD at the last epoch, {r['condition']}: {interval_cell(r['value'], r['lo'], r['hi'], '.4f')}")
    first, *others = trained
    rd_lines = [line for t in others for line in drift_difference_lines(t, first, ["RD"])]
    print("\n".join(filter(None, [missing_intervals(rd), *rd_lines] + forgetting_lines(trained))))
    return rd


ANALYSIS = Analysis(NAME, __doc__, lambda ctx, data: synthetic_runs(ctx.profile, data), render,
                    setting=synthetic_profile, font_scale=SINGLE_PANEL_FONT_SCALE)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
