"""Beyond the study: the stability–plasticity frontier. D_Held accuracy against D_Unk accuracy, epoch by epoch, for
every condition (fig3's runs: SFT, self-distillation, Only Known), each point with its 95% intervals.

Methods that learn new facts at different speeds are not comparable at the last epoch (less forgetting may only be
less learning), so they are compared at equal acquisition: at the first epoch where D_Unk accuracy (mean over
seeds) reaches 50% and 80%, ΔD_Held is the drop from D_Held's peak up to that epoch to that epoch (pp, the peak
found inside each resample), and two conditions are compared by the paired difference of that drop on the same
facts (each at its own epoch) with the exact sign-flip p of the per-fact drops, and by what each keeps there
(D_Held at that epoch, McNemar). Computed from the runs' stored per-epoch outcomes: nothing is trained that fig3 has
not.

    python -m analyses.frontier [--profile quick|paper|micro|standard] [--seeds 0 1 2] ...
"""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from probekit import stats

from .comparisons import outcome_line, paired_outcomes
from .epoch_tables import outcomes
from .outputs import interval_cell, save_table, write_outputs
from .plots import LINESTYLES
from .runs import STUDY_CONDITIONS
from .analysis import Analysis, standard_plan

NAME = "frontier"
LABELS = STUDY_CONDITIONS
THRESHOLDS = (0.5, 0.8)


def curve(t, split: str) -> stats.Estimate:
    """The run's accuracy on `split` per epoch (mean over seeds) with its 95% band."""
    return stats.seeds_curve_ci(outcomes(t, split))


def frontier_frame(trained) -> pd.DataFrame:
    """run, epoch, D_Unk (lo, hi), D_Held (lo, hi): one row per run and epoch."""
    rows = []
    for t in trained:
        unk, held = curve(t, "unknown"), curve(t, "held")
        for e, epoch in enumerate(m["epoch"] for m in t.records):
            rows.append({"run": t.label, "epoch": epoch, "D_Unk": unk.value[e], "D_Unk lo": unk.lo[e],
                         "D_Unk hi": unk.hi[e], "D_Held": held.value[e], "D_Held lo": held.lo[e],
                         "D_Held hi": held.hi[e]})
    return pd.DataFrame(rows)


def unknown_accuracy(t) -> np.ndarray:
    """D_Unk accuracy per epoch, mean over seeds and facts [E]."""
    return outcomes(t, "unknown").mean(axis=(0, 2))


def reached(acc: np.ndarray, threshold: float) -> int | None:
    """Index of the first epoch whose accuracy `acc` [E] is at least `threshold`, or None."""
    hits = np.flatnonzero(acc >= threshold)
    return int(hits[0]) if len(hits) else None


def at_threshold(trained, threshold: float) -> list[dict]:
    """Per run: the epoch D_Unk reaches `threshold`, D_Unk there, D_Held there and ΔD_Held up to there (both with
    their intervals)."""
    rows = []
    for t in trained:
        acc = unknown_accuracy(t)
        e = reached(acc, threshold)
        row = {"condition": t.label, "D_Unk reaches": f"{threshold:.0%}", "epoch": None, "D_Unk": None,
               "D_Held": None, "ΔD_Held (pp)": "not reached"}
        if e is not None:
            held = outcomes(t, "held")[:, : e + 1]
            kept, drop = stats.seeds_curve_ci(held, "last"), stats.seeds_curve_ci(held, "forgetting")
            row.update(epoch=str(t.records[e]["epoch"]), D_Unk=round(float(acc[e]), 3),
                       D_Held=interval_cell(kept.value, kept.lo, kept.hi),
                       **{"ΔD_Held (pp)": interval_cell(drop.value, drop.lo, drop.hi, ".1f")})
        rows.append(row)
    return rows


def comparison_lines(trained, threshold: float) -> list[str]:
    """Each run against the first at equal acquisition, where both reach it: the paired difference of ΔD_Held (the
    drop from each one's peak, sign-flip p) and of D_Held itself (what each keeps there, McNemar p)."""
    first, *others = trained
    e1 = reached(unknown_accuracy(first), threshold)
    lines = []
    for t in others:
        e2 = reached(unknown_accuracy(t), threshold)
        if e1 is None or e2 is None:
            lines.append(f"D_Unk {threshold:.0%}: {t.label} vs {first.label}: not compared (not reached by both)")
            continue
        a, b = outcomes(t, "held")[:, : e2 + 1], outcomes(first, "held")[:, : e1 + 1]
        paired = paired_outcomes(f"{t.label} (epoch {t.records[e2]['epoch']})",
                                 f"{first.label} (epoch {first.records[e1]['epoch']})", a, b, "forgetting", "ΔD_Held")
        kept = paired_outcomes(paired.a, paired.b, a, b, "last", "D_Held there")
        lines += [f"D_Unk {threshold:.0%}: {outcome_line(paired)}", f"D_Unk {threshold:.0%}: {outcome_line(kept)}"]
    return lines


def plot(df: pd.DataFrame, note: str):
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for (run, points), ls in zip(df.groupby("run", sort=False), LINESTYLES * 3):
        x, y = points["D_Unk"], points["D_Held"]
        ax.errorbar(x, y, xerr=[x - points["D_Unk lo"], points["D_Unk hi"] - x],
                    yerr=[y - points["D_Held lo"], points["D_Held hi"] - y], marker="o", ls=ls, capsize=2, label=run)
        for _, p in points.iterrows():
            ax.annotate(str(int(p["epoch"])), (p["D_Unk"], p["D_Held"]), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    for threshold in THRESHOLDS:
        ax.axvline(threshold, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("D_Unk accuracy (new facts learned)")
    ax.set_ylabel("D_Held accuracy (held-out facts kept)")
    ax.set_title("Stability–plasticity frontier (numbers: epochs; bars: 95% intervals)", fontsize=10)
    ax.legend(fontsize=8)
    fig.text(0.5, -0.04, note, ha="center", fontsize=8)
    return fig


def render(ctx, trained) -> pd.DataFrame:
    df = frontier_frame(trained)
    note = ctx.caption()
    write_outputs(plot(df, note), df, NAME, ctx.figures_dir, ctx.seconds())
    table = pd.DataFrame([row for th in THRESHOLDS for row in at_threshold(trained, th)])
    notes = [line for th in THRESHOLDS for line in comparison_lines(trained, th)]
    save_table(table, NAME, ctx.figures_dir, f"ΔD_Held at equal D_Unk acquisition — {note}", notes)
    return df


ANALYSIS = Analysis(NAME, __doc__, standard_plan(LABELS), render)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
