"""Figure 9: self-distillation ablations — snapshot epoch i, weight λ, temperature τ (Appendix D).

Each row varies one setting with the others at the study's values (i = 1, λ = 1, τ = 0.5): D_Unk accuracy (left)
and D_Held accuracy (right) over epochs.

    python -m analyses.fig9 [--profile quick|paper|micro] ...
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from .common import (
    Run, Timer, accuracy_frame, caption, dry_run, ensure_run, parser, placeholder_data, prepare_splits, profile_from,
    run_config, write_outputs,
)

NAME = "fig9"
GRID = {
    "paper": {"snapshot_epoch": (0, 1, 2, 3), "lam": (0.1, 0.5, 1.0, 1.5), "tau": (0.5, 1.0, 2.0, 4.0)},
    "quick": {"snapshot_epoch": (0, 1, 2), "lam": (0.1, 1.0, 1.5), "tau": (0.5, 2.0)},
    "micro": {"snapshot_epoch": (0, 1), "lam": (1.0,), "tau": (0.5,)},
}
SYMBOL = {"snapshot_epoch": "i", "lam": "λ", "tau": "τ"}


def planned_runs(profile, data) -> list[tuple[str, float, Run]]:
    out = []
    for param, values in GRID[profile.name].items():
        for v in values:
            kw = {"snapshot_epoch": profile.snapshot_epoch, "lam": profile.lam, "tau": profile.tau, param: v}
            out.append((param, v, Run(f"Self-distillation {param}={v}",
                                      run_config(profile, data, condition="self_distill", variant="full",
                                                 probe=True, **kw))))  # probe: the default run is fig3's
    return out


def main(argv=None):
    args = parser(NAME, __doc__).parse_args(argv)
    profile = profile_from(args)
    if args.dry_run:
        dry_run(NAME, profile, [r for _, _, r in planned_runs(profile, placeholder_data())])
        return None
    with Timer() as timer:
        data = prepare_splits(profile, args.runs_dir)
        frames = []
        for param, value, run in planned_runs(profile, data):
            df = accuracy_frame(run.label, ensure_run(run, args.runs_dir))
            frames.append(df.assign(param=param, setting=f"{SYMBOL[param]}={value}"))
    df = pd.concat(frames, ignore_index=True)
    df = df[df["split"].isin(["unknown", "held"])]
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.0)
    params = list(GRID[profile.name])
    fig, axes = plt.subplots(len(params), 2, figsize=(9, 3 * len(params)), squeeze=False)
    for row, param in enumerate(params):
        for col, split in enumerate(("unknown", "held")):
            sub = df[(df["param"] == param) & (df["split"] == split)]
            sns.lineplot(data=sub, x="epoch", y="accuracy", hue="setting", marker="o", ax=axes[row][col])
            axes[row][col].set_title(f"{'D_Unk' if split == 'unknown' else 'D_Held'} — varying {SYMBOL[param]}")
    fig.text(0.5, -0.01, caption(profile), ha="center", fontsize=8)
    fig.tight_layout()
    write_outputs(fig, df, NAME, args.figures_dir, timer.seconds)
    return df


if __name__ == "__main__":
    main()
