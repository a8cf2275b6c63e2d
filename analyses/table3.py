"""Table 3: fine-grained freezing — train only q, k, v, o, gate+up or down (Appendix C).

    python -m analyses.table3 [--profile quick|paper|micro] ...
"""
from __future__ import annotations

from .figure import run_figure
from .table1 import group_table

NAME = "table3"
ROWS = {g: f"Train {g}" for g in ("q", "k", "v", "o", "gate+up", "down")}


def main(argv=None):
    return run_figure(NAME, __doc__, list(ROWS.values()), lambda *a: group_table(NAME, ROWS, *a), argv)


if __name__ == "__main__":
    main()
