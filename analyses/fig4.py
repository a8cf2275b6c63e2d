"""Figure 4: forgetting ΔD_Held vs the number of synthetic facts, for semantic (token-mix) and UUID keys (§5.1).

Each point is an SFT run on D_Known ∪ n synthetic P17 facts; ΔD_Held is the drop from peak held-out accuracy during
training to the last epoch, in percentage points, with its 95% interval (band; CSV columns `<column> lo` / `hi`); at
each n, UUID against semantic keys as a paired difference with its exact sign-flip p. Scales: the study's
10^3..10^6 in the paper profile.

    python -m analyses.fig4 [--profile quick|paper|micro] [--scales 32 64 128] ...
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd

from probekit.config import option

from .comparisons import comparison_lines
from .epoch_tables import run_interval
from .outputs import band_of, interval_columns, write_outputs
from .plots import SINGLE_PANEL_FONT_SCALE, lines
from .profiles import synthetic_profile
from .runs import Run, run_config
from .analysis import Analysis

NAME = "fig4"
KEYS = ("semantic", "uuid")


@dataclass
class Options:
    scales: list[int] = option(help="numbers of synthetic facts, one SFT run per number and key type",
                               default_factory=lambda: [32, 64, 128])


SCALES = {"paper": [1_000, 10_000, 100_000, 1_000_000], "standard": [100, 250, 500], "quick": [32, 64, 128],
          "micro": [6, 12]}


def cells(scales: list[int]) -> list[tuple[str, int]]:
    """(key type, number of synthetic facts) of every run, in order."""
    return [(key, n) for key in KEYS for n in scales]


def plan(ctx, data) -> list[Run]:
    profile = ctx.profile
    splits = data.splits(profile)
    synthetic = {(key, n): data.synthetic(profile, key, n=n) for key, n in cells(ctx.options.scales)}
    return [Run(f"SFT {key} n={n}", run_config(profile, splits, unknown=path, condition="sft"),
                train_size=profile.splits.known_size + n) for (key, n), path in synthetic.items()]


def plot(df: pd.DataFrame, note: str):
    """ΔD_Held against the number of synthetic facts (log scale), one line per key type, with 95% bands."""
    fig, ax = plt.subplots(figsize=(6, 4))
    lines(ax, band_of(df, "forgetting_pp"), "n_synthetic", "forgetting_pp", "keys",
          palette={"semantic": "#d62728", "uuid": "#1f77b4"})
    ax.set_xscale("log")
    ax.set_xlabel("Number of synthetic facts")
    ax.set_ylabel("Forgetting ΔD_Held (pp)")
    fig.text(0.5, -0.04, note, ha="center", fontsize=8)
    return fig


def render(ctx, trained) -> pd.DataFrame:
    runs = dict(zip(cells(ctx.options.scales), trained))
    df = pd.DataFrame([{"keys": key, "n_synthetic": n,
                        **interval_columns("forgetting_pp", run_interval(t, "forgetting")),
                        **interval_columns("D_Unk_last", run_interval(t, "last", "unknown")),
                        **interval_columns("D_Known_last", run_interval(t, "last", "known"))}
                       for (key, n), t in runs.items()])
    write_outputs(plot(df, ctx.caption()), df, NAME, ctx.figures_dir, ctx.seconds())
    print(df.to_string(index=False, float_format="{:.3f}".format))
    print("\n".join(comparison_lines([(runs["uuid", n], runs["semantic", n]) for n in ctx.options.scales])))
    return df


ANALYSIS = Analysis(NAME, __doc__, plan, render, options=Options,
                    defaults={preset: {"scales": scales} for preset, scales in SCALES.items()},
                    setting=synthetic_profile, font_scale=SINGLE_PANEL_FONT_SCALE)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
