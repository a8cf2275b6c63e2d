"""Figure 9: self-distillation ablations — snapshot epoch i, weight λ, temperature τ (Appendix D), and the reading
of eq. 2's M(y) (every non-padded position, or the answer's positions only: ``--distill-positions``).

Each row varies one setting with the others at the study's values (i = 1, λ = 1, τ = 0.5, M(y) = all): D_Unk
accuracy (left) and D_Held accuracy (right) over epochs, with 95% bands; each value's ΔD_Held and last-epoch D_Unk
against the study's value of the same setting as paired differences (the sign-flip p of per-fact drops for ΔD_Held,
McNemar for D_Unk).

    python -m analyses.fig9 [--profile quick|paper|micro] ...
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd

from training.config import DISTILL_POSITIONS, RunConfig

from .comparisons import comparison_lines
from .epoch_tables import run_accuracy
from .outputs import write_outputs
from .plots import GRID_FONT_SCALE, lines
from .runs import Run, run_config
from .analysis import Analysis

NAME = "fig9"
M_Y = {"distill_positions": DISTILL_POSITIONS}  # eq. 2's two readings of M(y), in every profile
QUICK = {"snapshot_epoch": (0, 1, 2), "lam": (0.1, 1.0, 1.5), "tau": (0.5, 2.0), **M_Y}
GRID = {
    "paper": {"snapshot_epoch": (0, 1, 2, 3), "lam": (0.1, 0.5, 1.0, 1.5), "tau": (0.5, 1.0, 2.0, 4.0), **M_Y},
    "standard": QUICK,
    "quick": QUICK,
    "micro": {"snapshot_epoch": (0, 1), "lam": (1.0,), "tau": (0.5,), **M_Y},
}
SYMBOL = {"snapshot_epoch": "i", "lam": "λ", "tau": "τ", "distill_positions": "M(y)"}


def settings(profile) -> list[tuple[str, float]]:
    """(setting, value) of every run, in order."""
    return [(param, v) for param, values in GRID[profile.name].items() for v in values]


def study_values(profile) -> dict:
    """The study's value of each varied setting (M(y): the trainer's default reading, every non-padded position)."""
    return {"snapshot_epoch": profile.run.snapshot_epoch, "lam": profile.run.lam, "tau": profile.run.tau,
            "distill_positions": RunConfig.distill_positions}


def plan(ctx, data) -> list[Run]:
    profile = ctx.profile
    splits = data.splits(profile)
    study = study_values(profile)
    return [Run(f"Self-distillation {param}={v}",
                run_config(profile, splits, condition="self_distill", variant="full", probe=True,
                           **{**study, param: v}))  # probe: the default run is fig3's
            for param, v in settings(profile)]


def plot(df: pd.DataFrame, params: list[str], note: str):
    """One row per varied setting: D_Unk and D_Held accuracy over epochs, one line per value."""
    fig, axes = plt.subplots(len(params), 2, figsize=(9, 3 * len(params)), squeeze=False)
    for row, param in enumerate(params):
        for col, split in enumerate(("unknown", "held")):
            sub = df[(df["param"] == param) & (df["split"] == split)]
            lines(axes[row][col], sub, "epoch", "accuracy", "setting")
            axes[row][col].set_title(f"{'D_Unk' if split == 'unknown' else 'D_Held'} — varying {SYMBOL[param]}")
    fig.text(0.5, -0.01, note, ha="center", fontsize=8)
    fig.tight_layout()
    return fig


def render(ctx, trained) -> pd.DataFrame:
    df = pd.concat([run_accuracy(t).assign(param=param, setting=f"{SYMBOL[param]}={value}")
                    for (param, value), t in zip(settings(ctx.profile), trained)], ignore_index=True)
    df = df[df["split"].isin(["unknown", "held"])]
    fig = plot(df, list(GRID[ctx.profile.name]), ctx.caption())
    write_outputs(fig, df, NAME, ctx.figures_dir, ctx.seconds())
    pairs = against_study(ctx.profile, trained)
    print("\n".join(comparison_lines(pairs) + comparison_lines(pairs, "last", "unknown")))
    return df


def against_study(profile, trained) -> list[tuple]:
    """(run, the run at the study's value of the same setting) for every other value of each setting."""
    runs = dict(zip(settings(profile), trained))
    study = study_values(profile)
    return [(t, runs[param, study[param]]) for (param, value), t in runs.items()
            if value != study[param] and (param, study[param]) in runs]


ANALYSIS = Analysis(NAME, __doc__, plan, render, font_scale=GRID_FONT_SCALE)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
