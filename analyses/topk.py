"""Appendix F: which part of the output distribution matters? Full vs top-k vs random-k distillation vs SFT.

Top-k restricts the KL to the teacher's k most likely tokens at each position, random-k to k uniformly random ones
(k = 76 by default, ``--k`` to change in the trainer); both renormalise there (eq. 5). As in the study, the runs
are in the synthetic semantic-key setting (D_Known ∪ synthetic P17 facts with token-mix keys, 10,000 in the paper
profile; D_Held = HighlyKnown P17 dev), so SFT and full self-distillation are fig5's semantic-key runs, shared.

    python -m analyses.topk [--profile quick|paper|micro] ...
"""
from __future__ import annotations

import pandas as pd

from .comparisons import forgetting_lines
from .epoch_tables import run_interval, split_accuracy
from .outputs import interval_columns, save_table, write_outputs
from .plots import split_panels
from .profiles import synthetic_profile
from .runs import Run, run_config
from .analysis import Analysis

NAME = "topk"
CONDITIONS = {"SFT": dict(condition="sft"), "Self-distillation": dict(condition="self_distill", variant="full"),
              "Top-k distillation": dict(condition="self_distill", variant="topk"),
              "Random-k distillation": dict(condition="self_distill", variant="randomk")}
SPLITS = ["unknown", "held"]


def plan(ctx, data) -> list[Run]:
    """The four conditions on the profile's splits with the semantic-key synthetic facts as D_Unk (fig5's setting:
    the same run configs, so SFT and self-distillation are fig5's runs)."""
    profile = ctx.profile
    splits, semantic = data.splits(profile), data.synthetic(profile, "semantic")
    return [Run(label, run_config(profile, splits, unknown=semantic, probe=True, **overrides),
                train_size=profile.splits.known_size + profile.synthetic) for label, overrides in CONDITIONS.items()]


def render(ctx, trained):
    df = split_accuracy(trained, SPLITS)
    note = ctx.caption(f"{ctx.profile.synthetic} semantic-key synthetic facts")
    write_outputs(split_panels(df, SPLITS, note=note), df, NAME, ctx.figures_dir, ctx.seconds())
    table = pd.DataFrame([{"condition": t.label,
                           **interval_columns("D_Unk (last)", run_interval(t, "last", "unknown")),
                           **interval_columns("D_Held (last)", run_interval(t, "last", "held")),
                           **interval_columns("ΔD_Held (pp)", run_interval(t, "forgetting"))} for t in trained])
    save_table(table, NAME, ctx.figures_dir, f"Distillation variants — {note}", forgetting_lines(trained))
    return df


ANALYSIS = Analysis(NAME, __doc__, plan, render, setting=synthetic_profile)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
