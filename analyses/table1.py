"""Table 1: training only some parameter groups — attention only, FFN only, all (SFT), and Only Known (§3.2).

Reports the last epoch's D_Unk, D_Known and D_Held accuracy as `value [lo, hi]` (95% intervals over facts, and
seeds with ``--seeds``), and each group's D_Held against standard SFT's as a paired difference with McNemar's p.

    python -m analyses.table1 [--profile quick|paper|micro] ...
"""
from __future__ import annotations

from .accuracy_table import group_table

NAME = "table1"
ROWS = {"Attention": "Train attn", "FFN": "Train ffn", "All (standard SFT)": "SFT", "All (Only Known)": "Only Known"}
ANALYSIS = group_table(NAME, __doc__, ROWS, "All (standard SFT)")
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
