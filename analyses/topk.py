"""Appendix F: which part of the output distribution matters? Full vs top-k vs random-k distillation vs SFT.

Top-k restricts the KL to the teacher's k most likely tokens at each position, random-k to k uniformly random ones
(k = 76 by default, ``--k`` to change in the trainer); both renormalise there (eq. 5).

    python -m analyses.topk [--profile quick|paper|micro] ...
"""
from __future__ import annotations

import pandas as pd

from .frames import forgetting, last_accuracy, split_accuracy
from .outputs import caption, save_table, write_outputs
from .plots import split_panels
from .skeleton import Analysis, standard_plan

NAME = "topk"
LABELS = ["SFT", "Self-distillation", "Top-k distillation", "Random-k distillation"]
SPLITS = ["unknown", "held"]


def render(ctx, trained):
    df = split_accuracy(trained, SPLITS)
    write_outputs(split_panels(df, SPLITS, note=caption(ctx.profile)), df, NAME, ctx.figures_dir, ctx.seconds())
    table = pd.DataFrame([{"condition": t.label, "D_Unk (last)": last_accuracy(t.records, "unknown"),
                           "D_Held (last)": last_accuracy(t.records, "held"), "ΔD_Held (pp)": forgetting(t.records)}
                          for t in trained])
    save_table(table, NAME, ctx.figures_dir, f"Distillation variants — {caption(ctx.profile)}")
    return df


ANALYSIS = Analysis(NAME, __doc__, standard_plan(LABELS), render)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
