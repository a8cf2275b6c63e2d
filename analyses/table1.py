"""Table 1: training only some parameter groups — attention only, FFN only, all (SFT), and Only Known (§3.2).

Reports the last epoch's D_Unk, D_Known and D_Held accuracy.

    python -m analyses.table1 [--profile quick|paper|micro] ...
"""
from __future__ import annotations

import pandas as pd

from .frames import last_accuracy
from .outputs import caption, save_csv, save_table
from .skeleton import Analysis, by_label, standard_plan

NAME = "table1"
ROWS = {"Attention": "Train attn", "FFN": "Train ffn", "All (standard SFT)": "SFT", "All (Only Known)": "Only Known"}


def group_table(name: str, doc: str, rows: dict[str, str]) -> Analysis:
    """A table of the last epoch's accuracy, one row per run; `rows`: row name → standard run label."""
    def render(ctx, trained):
        records = by_label(trained)
        table = pd.DataFrame([{"updated params": row, "D_Unk": last_accuracy(records[label], "unknown"),
                               "D_Known": last_accuracy(records[label], "known"),
                               "D_Held": last_accuracy(records[label], "held")}
                              for row, label in rows.items()])
        if "All (Only Known)" in table["updated params"].values:  # D_Unk is not trained on there
            table.loc[table["updated params"] == "All (Only Known)", "D_Unk"] = None
        save_csv(table, name, ctx.figures_dir)
        save_table(table, name, ctx.figures_dir, f"{name}: last-epoch accuracy — {caption(ctx.profile)}")
        print(f"done in {ctx.seconds():.0f} s")
        return table

    return Analysis(name, doc, standard_plan(list(rows.values())), render)


ANALYSIS = group_table(NAME, __doc__, ROWS)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
