"""Table 3: fine-grained freezing — train only q, k, v, o, gate+up or down (Appendix C).

Last-epoch accuracy as `value [lo, hi]` (95% intervals); each group's D_Held against the q-only run's as a paired
difference with McNemar's p.

    python -m analyses.table3 [--profile quick|paper|micro] ...
"""
from __future__ import annotations

from .accuracy_table import group_table

NAME = "table3"
ROWS = {g: f"Train {g}" for g in ("q", "k", "v", "o", "gate+up", "down")}

ANALYSIS = group_table(NAME, __doc__, ROWS)
main = ANALYSIS.main

if __name__ == "__main__":
    ANALYSIS.cli()
