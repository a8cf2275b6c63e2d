"""Figure 11: every drift metric under SFT and self-distillation on the semantic-key synthetic setting (App. F).

RD, JSD, MTD, NS (top row), NTR, Rank-ρ, train D_Unk and val D_Held accuracy (bottom row), per epoch; the runs are
fig5's SFT and self-distillation runs on semantic keys (shared, trained once).

    python -m analyses.fig11 [--profile quick|paper|micro] ...
"""
from __future__ import annotations

import pandas as pd

from .common import (
    Timer, accuracy_frame, caption, dry_run, ensure_run, parser, prepare_splits, prepare_synthetic, probe_frame,
    profile_from, synthetic_profile, write_outputs,
)
from .fig5 import planned_runs
from .plots import metric_panels

NAME = "fig11"
LABELS = ("SFT, semantic keys", "Self-distillation, semantic keys")
PANELS = ["RD", "JSD", "MTD", "NS", "NTR", "Rank-rho", "train D_Unk", "val D_Held"]


def main(argv=None):
    args = parser(NAME, __doc__).parse_args(argv)
    profile = synthetic_profile(profile_from(args))
    if args.dry_run:
        runs = planned_runs(profile, {"known": "<known>", "held": "<held>"}, {"semantic": "<s>", "uuid": "<u>"})
        dry_run(NAME, profile, [r for r in runs if r.label in LABELS])
        return None
    with Timer() as timer:
        data = prepare_splits(profile, args.runs_dir)
        synthetic = {k: prepare_synthetic(profile, args.runs_dir, k) for k in ("semantic", "uuid")}
        runs = [r for r in planned_runs(profile, data, synthetic) if r.label in LABELS]
        metrics = {r.label: ensure_run(r, args.runs_dir) for r in runs}
    frames = []
    for label, m in metrics.items():
        frames.append(probe_frame(label, m))
        acc = accuracy_frame(label, m)
        acc = acc[acc["split"].isin(["unknown", "held"])].replace({"unknown": "train D_Unk", "held": "val D_Held"})
        frames.append(acc.rename(columns={"split": "metric", "accuracy": "value"}))
    df = pd.concat(frames, ignore_index=True)
    fig = metric_panels(df, PANELS, note=caption(profile, f"layer {profile.layer or 'middle'}"))
    write_outputs(fig, df, NAME, args.figures_dir, timer.seconds)
    last = df[df["epoch"] == df["epoch"].max()].pivot_table(index="metric", columns="run", values="value")
    print(last.to_string(float_format="{:.4f}".format))
    return df


if __name__ == "__main__":
    main()
