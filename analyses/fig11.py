"""Figure 11: every drift metric under SFT and self-distillation on the semantic-key synthetic setting (App. F).

RD, JSD, MTD, NS (top row), NTR, Rank-ρ, train D_Unk and val D_Held accuracy (bottom row), per epoch; the runs are
fig5's SFT and self-distillation runs on semantic keys (shared, trained once), except in the paper profile, where
the study trains them for 100 epochs (fig5: 20).

    python -m analyses.fig11 [--profile quick|paper|micro] ...
"""
from __future__ import annotations

import pandas as pd

from .comparisons import forgetting_lines
from .drift_items import PAIRED_OVER, drift_difference_lines, drift_frame
from .epoch_tables import run_accuracy
from .outputs import write_outputs
from .plots import metric_panels
from .profiles import synthetic_profile
from .runs import SEMANTIC_KEY_CONDITIONS, synthetic_runs
from .analysis import Analysis

NAME = "fig11"
PANELS = ["RD", "JSD", "MTD", "NS", "NTR", "Rank-rho", "train D_Unk", "val D_Held"]


def render(ctx, trained) -> pd.DataFrame:
    frames = []
    for t in trained:
        frames.append(drift_frame(t))
        acc = run_accuracy(t)
        acc = acc[acc["split"].isin(["unknown", "held"])].replace({"unknown": "train D_Unk", "held": "val D_Held"})
        frames.append(acc.rename(columns={"split": "metric", "accuracy": "value"}))
    df = pd.concat(frames, ignore_index=True)
    fig = metric_panels(df, PANELS, note=ctx.caption(f"layer {ctx.profile.probe.layer or 'middle'}"))
    write_outputs(fig, df, NAME, ctx.figures_dir, ctx.seconds())
    last = df[df["epoch"] == df["epoch"].max()].pivot_table(index="metric", columns="run", values="value")
    print(last.to_string(float_format="{:.4f}".format))
    first, *others = trained
    drift = [line for t in others for line in drift_difference_lines(t, first, list(PAIRED_OVER))]
    print("\n".join(drift + forgetting_lines(trained)))
    return df


ANALYSIS = Analysis(NAME, __doc__, lambda ctx, data: synthetic_runs(ctx.profile, data, SEMANTIC_KEY_CONDITIONS), render,
                    defaults={"paper": {"epochs": 100}}, setting=synthetic_profile)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
