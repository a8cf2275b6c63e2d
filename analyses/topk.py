"""Appendix F: which part of the output distribution matters? Full vs top-k vs random-k distillation vs SFT.

Top-k restricts the KL to the teacher's k most likely tokens at each position, random-k to k uniformly random ones
(k = 76 by default, ``--k`` to change in the trainer); both renormalise there (eq. 5).

    python -m analyses.topk [--profile quick|paper|micro] ...
"""
from __future__ import annotations

import pandas as pd

from .common import caption, forgetting, save_table, write_outputs
from .figure import run_figure
from .plots import split_panels

NAME = "topk"
LABELS = ["SFT", "Self-distillation", "Top-k distillation", "Random-k distillation"]


def render(metrics, profile, args, seconds):
    fig, df = split_panels(metrics, ["unknown", "held"], note=caption(profile))
    write_outputs(fig, df, NAME, args.figures_dir, seconds)
    table = pd.DataFrame([{"condition": label, "D_Unk (last)": m[-1]["accuracy"].get("unknown"),
                           "D_Held (last)": m[-1]["accuracy"].get("held"), "ΔD_Held (pp)": forgetting(m)}
                          for label, m in metrics.items()])
    save_table(table, NAME, args.figures_dir, f"Distillation variants — {caption(profile)}")
    return df


def main(argv=None):
    return run_figure(NAME, __doc__, LABELS, render, argv)


if __name__ == "__main__":
    main()
