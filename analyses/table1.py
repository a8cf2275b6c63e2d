"""Table 1: training only some parameter groups — attention only, FFN only, all (SFT), and Only Known (§3.2).

Reports the last epoch's D_Unk, D_Known and D_Held accuracy.

    python -m analyses.table1 [--profile quick|paper|micro] ...
"""
from __future__ import annotations

import pandas as pd

from .common import caption, save_csv, save_table
from .figure import run_figure

NAME = "table1"
ROWS = {"Attention": "Train attn", "FFN": "Train ffn", "All (standard SFT)": "SFT", "All (Only Known)": "Only Known"}


def group_table(name: str, rows: dict[str, str], metrics, profile, args, seconds):
    table = pd.DataFrame([{"updated params": row, "D_Unk": metrics[label][-1]["accuracy"].get("unknown"),
                           "D_Known": metrics[label][-1]["accuracy"].get("known"),
                           "D_Held": metrics[label][-1]["accuracy"].get("held")}
                          for row, label in rows.items()])
    if "All (Only Known)" in table["updated params"].values:  # D_Unk is not trained on there
        table.loc[table["updated params"] == "All (Only Known)", "D_Unk"] = None
    save_csv(table, name, args.figures_dir)
    save_table(table, name, args.figures_dir, f"{name}: last-epoch accuracy — {caption(profile)}")
    print(f"done in {seconds:.0f} s")
    return table


def main(argv=None):
    return run_figure(NAME, __doc__, list(ROWS.values()),
                      lambda *a: group_table(NAME, ROWS, *a), argv)


if __name__ == "__main__":
    main()
